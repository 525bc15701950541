"""One candidate, from its decisions to its scores: build, latency, screening, then promoted rungs.

Independent of Optuna: results go to a `Recorder` (an Optuna trial's user attributes, or a dict that a
Ray worker sends back) and rung results to a `RungBoard` for promotion. A candidate that fails at any
stage (build, export, measurement, NaN) comes back as `failed` with the stage and the reason; a
resolution that breaks the space's own constraints, or whose model would not fit in memory (the resource
guard), comes back `rejected` without being built; one whose predicted latency is clearly over the limit
comes back `screened` without being measured (`screen`).
Configuration problems (`InputError`: a broken dataset, a missing latency model) are not the
candidate's fault: they come back `fatal`, so the search stops with exit 2.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from nasearch.errors import InputError
from nasearch.nn.inspect import fused_copy, model_size
from nasearch.proxy.result import ProxyResult
from nasearch.search import promotion, screen
from nasearch.search.experiment import LoadedExperiment, ProxySpec
from nasearch.search.objectives import (
    EvalContext,
    LatencyEvaluator,
    LatencyResult,
    dataset_provider,
    score_accuracy,
)
from nasearch.search.record import checked
from nasearch.space import Architecture, Space, build_model, load_space
from nasearch.space.memory import MemoryLimitError
from nasearch.space.memory import require as require_memory


class Recorder(Protocol):
    def set(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class Prior:
    """An earlier complete trial of the same architecture, whose results a duplicate reuses."""

    number: int
    values: tuple[float, float]
    constraints: dict[str, float]
    attrs: dict[str, Any]


class Memo(Protocol):
    def lookup(self, arch_hash: str) -> Prior | None: ...


REUSED = (
    "arch_name",
    "params",
    "gflops",
    "convs",
    "latency_screen",
    "screen_latency_ms",
    "screen_latency_measured",
    "latency_ms",
    "latency_measured",
    "latency_method",
    "latency_details",
    "rungs",
    "accuracy",
    "accuracy_kind",
    "fidelity",
    "feasible",
    "violations",
)


class DictRecorder:
    """The attributes a trial would get, in a dict (checked like a trial's: see `record`)."""

    def __init__(self) -> None:
        self.attrs: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        self.attrs[key] = checked(key, value)


@dataclass
class Outcome:
    state: Literal["complete", "failed", "rejected", "screened", "fatal"]
    values: tuple[float, float] | None = None  # (screening latency ms, screening accuracy)
    constraints: dict[str, float] = field(default_factory=dict)  # <= 0 feasible
    reason: str = ""
    error: InputError | None = None


@dataclass
class SearchContext:
    """Everything a worker needs to evaluate candidates of one experiment."""

    exp: LoadedExperiment
    space: Space
    latency: LatencyEvaluator
    dataset: Callable[[], Path]
    imgsz: int
    nc: int

    @classmethod
    def create(cls, exp: LoadedExperiment) -> SearchContext:
        space = load_space(exp.space_path)
        imgsz = exp.spec.imgsz or int(space.tree["imgsz"])
        nc = exp.spec.nc or int(space.tree["nc"])
        latency = LatencyEvaluator(exp.spec.objectives.latency, imgsz, exp.latency_db)
        return cls(exp, space, latency, dataset_provider(exp), imgsz, nc)

    @property
    def screens(self) -> bool:
        """Whether the latency screen runs: a latency limit, latency measured here, and not turned off."""
        spec = self.exp.spec
        return (
            spec.latency_screen.enabled
            and spec.constraints.latency_ms is not None
            and spec.objectives.latency.source == "measure"
        )

    @property
    def rungs(self) -> list[ProxySpec]:
        acc = self.exp.spec.objectives.accuracy
        return [acc.screen, *acc.rungs]

    def architecture(self, data: dict, preset: str | None = None) -> Architecture:
        """The validated candidate at the experiment's scale, resolution and classes, named by its hash
        (a preset keeps its name, with the scale as a suffix)."""
        base = self.space.to_arch(data)
        if preset:
            base = Architecture({**base.data, "name": preset}, base.source)
        scale = self.exp.spec.scale
        if not scale.identity:
            from nasearch.proxy.scale import scale_arch

            base = scale_arch(base, scale.width, scale.depth, head_width=scale.head_width)
        base = base.with_overrides(imgsz=self.imgsz, nc=self.nc)
        name = base.name if preset else f"{self.space.name}-{base.hash[:8]}"
        return Architecture({**base.data, "name": name}, base.source)


def _limits_excess(limits: dict[str, float], latency_ms: float, params: int, gflops: float) -> dict[str, float]:
    """Constraint values in Optuna's convention (<= 0 feasible), relative to each limit."""
    have = {"latency_ms": latency_ms, "params_m": params / 1e6, "gflops": gflops}
    return {k: (have[k] - v) / v for k, v in limits.items()}


def _rung_doc(index: int, spec: ProxySpec, acc: ProxyResult, lat: LatencyResult, feasible: bool) -> dict:
    return {
        "rung": index,
        "proxy": spec.proxy,
        "budget": dict(spec.budget),
        "accuracy": acc.value,
        "kind": acc.kind,
        "seconds": round(acc.seconds, 3),
        "latency_ms": lat.ms,
        "latency_measured": lat.measured,
        "feasible": feasible,
        "details": _jsonable(acc.details),
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def rejection(space: Space, data: dict, rec: Recorder) -> Outcome | None:
    """The `rejected` outcome of a resolution that breaks the space's own constraints (else None)."""
    violations = space.violations(data)
    if not violations:
        return None
    reason = f"space constraint: {violations[0]}"
    rec.set("rejected", reason)
    return Outcome("rejected", constraints={"space": float(len(violations))}, reason=reason)


def evaluate(
    ctx: SearchContext,
    data: dict,
    key: str,
    rec: Recorder,
    board: promotion.RungBoard,
    preset: str | None = None,
    memo: Memo | None = None,
    history: screen.LatencyHistory | None = None,
) -> Outcome:
    """Score one resolution of the space; never raises for a bad candidate.

    An architecture already scored in this study (same content hash) is not scored again: the trial
    reuses the earlier results and says so (`duplicate_of`). With a `history` of measured candidates (by
    default the memo, when it keeps one: the study's board, locally and on Ray workers) or a latency
    database, the latency screen may skip the measurement (`screened`); presets are always measured."""
    if history is None and isinstance(memo, screen.LatencyHistory):
        history = memo
    start = time.perf_counter()
    if preset:
        rec.set("preset", preset)
    rejected = rejection(ctx.space, data, rec)
    if rejected is not None:
        return rejected
    stage = "architecture"
    try:
        arch = ctx.architecture(data, preset)
        rec.set("arch_name", arch.name)
        rec.set("arch_hash", arch.hash)
        rec.set("arch_yaml", arch.dumps())
        prior = memo.lookup(arch.hash) if memo is not None else None
        if prior is not None:
            for k in REUSED:
                if k in prior.attrs:
                    rec.set(k, prior.attrs[k])
            rec.set("duplicate_of", prior.number)
            rec.set("seconds", round(time.perf_counter() - start, 3))
            return Outcome("complete", prior.values, constraints=dict(prior.constraints))
        stage = "build"
        # weights and inference activations at the latency resolution, estimated on the meta device: a
        # candidate that would not fit is rejected before anything is allocated (training rungs check theirs)
        require_memory(arch, imgsz=ctx.latency.imgsz)
        model = build_model(arch)
        fused = fused_copy(model)
        size = model_size(model, ctx.latency.imgsz, fused)
        params, gflops = size.params, size.gflops
        rec.set("params", params)
        rec.set("gflops", round(gflops, 4))
        convs = screen.conv_count(fused)
        rec.set("convs", convs)
        limits = ctx.exp.spec.constraints.limits()
        if ctx.screens and not preset:
            stage = "latency screen"
            verdict = _screen(ctx, arch, gflops, convs, history)
            rec.set("latency_screen", verdict.doc())
            if verdict.skip:
                assert verdict.predicted_ms is not None
                rec.set("screened", verdict.reason)
                rec.set("feasible", False)
                rec.set("seconds", round(time.perf_counter() - start, 3))
                return Outcome(
                    "screened",
                    constraints=_limits_excess(limits, verdict.predicted_ms, params, gflops),
                    reason=verdict.reason,
                )
        stage = "latency"
        lat = ctx.latency.screen(arch, fused)
        if not (math.isfinite(lat.ms) and lat.ms > 0):
            raise FloatingPointError(f"latency {lat.ms}")
        rec.set("screen_latency_ms", lat.ms)
        rec.set("screen_latency_measured", lat.measured)
        _set_latency(rec, lat)
        excess = _limits_excess(limits, lat.ms, params, gflops)
        feasible = all(v <= 0 for v in excess.values())
        ectx = EvalContext(ctx.imgsz, ctx.nc, ctx.exp.spec.seed, ctx.dataset)
        rungs: list[dict] = []
        screen_acc: float | None = None
        eta = ctx.exp.spec.objectives.accuracy.eta
        for index, spec in enumerate(ctx.rungs):
            if index > 0:
                stage = f"promotion to rung {index}"
                promoted = bool(preset) or promotion.decide(board, key, index - 1, eta)
                rungs[-1]["promoted"] = promoted
                rec.set("rungs", rungs)
                if not (feasible and promoted):
                    break
                if index == 1 and ctx.latency.confirms:
                    stage = "latency (promoted)"
                    lat = ctx.latency.measure(fused)
                    _set_latency(rec, lat)
                    excess = _limits_excess(limits, lat.ms, params, gflops)
                    feasible = all(v <= 0 for v in excess.values())
                    if not feasible:
                        break
            stage = f"accuracy rung {index} ({spec.proxy})"
            acc = score_accuracy(spec, arch, ectx)  # proxies that train build their own fresh model
            if index == 0:
                screen_acc = acc.value
            rungs.append(_rung_doc(index, spec, acc, lat, feasible))
            rec.set("rungs", rungs)
            rec.set("accuracy", acc.value)
            rec.set("accuracy_kind", acc.kind)
            rec.set("fidelity", index)
            board.record(key, index, (lat.ms, acc.value), feasible)
        assert screen_acc is not None
        rec.set("feasible", feasible)
        rec.set("violations", [f"{k} over its limit by {v:.1%}" for k, v in excess.items() if v > 0])
        rec.set("seconds", round(time.perf_counter() - start, 3))
        values = (float(rungs[0]["latency_ms"]), float(screen_acc))
        return Outcome("complete", values, constraints=excess)
    except MemoryLimitError as exc:  # the candidate's fault, not the configuration's: rejected, not fatal
        reason = f"{stage}: {exc.line().removeprefix('error: ')}"
        rec.set("rejected", reason)
        rec.set("seconds", round(time.perf_counter() - start, 3))
        return Outcome("rejected", constraints={"memory": 1.0}, reason=reason)
    except InputError as exc:
        rec.set("failure", f"{stage}: {exc.line()}")
        return Outcome("fatal", reason=f"{stage}: {exc.line()}", error=exc)
    except Exception as exc:
        reason = f"{stage}: {_short(exc)}"
        rec.set("failure", reason)
        rec.set("failure_trace", traceback.format_exc(limit=6)[-2000:])
        rec.set("seconds", round(time.perf_counter() - start, 3))
        return Outcome("failed", reason=reason)


def _screen(
    ctx: SearchContext, arch: Architecture, gflops: float, convs: int, history: screen.LatencyHistory | None
) -> screen.Verdict:
    spec = ctx.exp.spec.latency_screen
    limit = ctx.exp.spec.constraints.latency_ms
    assert limit is not None
    try:
        stored = ctx.latency.predict_stored(arch)
    except InputError:  # a database that cannot predict this candidate: the online fit instead
        stored = None
    db = (stored.ms, stored.method) if stored is not None else None
    return screen.decide(
        limit,
        gflops,
        convs,
        history.measured() if history is not None else [],
        spec.min_history,
        spec.min_margin,
        spec.max_margin,
        db,
    )


def _set_latency(rec: Recorder, lat: LatencyResult) -> None:
    rec.set("latency_ms", lat.ms)
    rec.set("latency_measured", lat.measured)
    rec.set("latency_method", lat.method)
    if lat.details:
        rec.set("latency_details", _jsonable(lat.details))
