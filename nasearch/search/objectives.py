"""What the search scores a candidate by: its latency on the target and an accuracy proxy.

Latency comes from one of three sources (`objectives.latency.source`): `measure` (a backend of
`nasearch.latency` timing the fused model on this machine: measured), `database` (the block latency
database: predicted) or `target` (a latency model of a device, e.g. the T4 roofline: predicted).

Accuracy is a registered proxy called by name: `fn(arch, ctx, **budget) -> AccuracyResult`, higher is
better. The #params and GFLOPs baselines live here; the zero-cost scores and short-training proxy mAP
of `nasearch.proxy` are picked up from its registry when it is installed, under their own names.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from torch import nn

from nasearch.errors import InputError
from nasearch.search.experiment import LatencySpec, LoadedExperiment, ProxySpec
from nasearch.space import Architecture


@dataclass(frozen=True)
class LatencyResult:
    ms: float
    measured: bool
    method: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AccuracyResult:
    value: float  # higher is better
    kind: str  # what the value is: "params_m", "gflops", "zen", "map50_95", ...
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalContext:
    """What a proxy may need besides the architecture: sizes, data, seed, and the built model."""

    imgsz: int
    nc: int
    seed: int
    dataset: Callable[[], Path] | None = None  # ensures and returns the dataset (synthetic on first use)
    model: nn.Module | None = None  # the candidate in training form (fresh weights), if already built
    fused: nn.Module | None = None
    params: int | None = None
    gflops: float | None = None


ProxyFn = Callable[..., AccuracyResult]


@dataclass(frozen=True)
class ProxyEntry:
    name: str
    fn: ProxyFn
    budget_keys: frozenset[str] | None  # None: any keyword accepted
    description: str = ""


_LOCAL: dict[str, ProxyEntry] = {}


def register_proxy(name: str, budget_keys: set[str] | None = None, description: str = "") -> Callable:
    """Register an accuracy proxy `fn(arch, ctx, **budget) -> AccuracyResult` under `name`."""

    def deco(fn: ProxyFn) -> ProxyFn:
        _LOCAL[name] = ProxyEntry(name, fn, frozenset(budget_keys) if budget_keys is not None else None,
                                  description)
        return fn

    return deco


@register_proxy("params", set(), "#parameters in millions (training form): the capacity baseline")
def _params_proxy(arch: Architecture, ctx: EvalContext) -> AccuracyResult:
    assert ctx.params is not None
    return AccuracyResult(ctx.params / 1e6, "params_m")


@register_proxy("flops", set(), "GFLOPs of the fused model at the search resolution: the compute baseline")
def _flops_proxy(arch: Architecture, ctx: EvalContext) -> AccuracyResult:
    assert ctx.gflops is not None
    return AccuracyResult(ctx.gflops, "gflops")


def _external_proxies() -> dict[str, ProxyEntry]:
    """Proxies of `nasearch.proxy` (zero-cost scores, short-training mAP), adapted to this interface."""
    try:
        from nasearch.proxy import registry as proxy_registry  # type: ignore[attr-defined]
    except ImportError:
        return {}
    names = getattr(proxy_registry, "names", None)
    get = getattr(proxy_registry, "get", None)
    if not callable(names) or not callable(get):
        return {}
    out = {}
    for name in names():
        if name in _LOCAL:
            continue
        out[name] = _adapt_external(name, get(name))
    return out


def _adapt_external(name: str, proxy: Any) -> ProxyEntry:
    score = getattr(proxy, "score", proxy)
    sig = inspect.signature(score)
    params = sig.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    fixed = {"arch", "imgsz", "model", "data", "seed", "nc"}
    keys = None if var_kw else frozenset(k for k in params if k not in fixed and k != "self")

    def call(arch: Architecture, ctx: EvalContext, **budget: Any) -> AccuracyResult:
        kwargs: dict[str, Any] = dict(budget)
        if "imgsz" in params and "imgsz" not in kwargs:
            kwargs["imgsz"] = ctx.imgsz
        if "seed" in params and "seed" not in kwargs:
            kwargs["seed"] = ctx.seed
        if "nc" in params and "nc" not in kwargs:
            kwargs["nc"] = ctx.nc
        if "data" in params and "data" not in kwargs and ctx.dataset is not None:
            kwargs["data"] = ctx.dataset()
        start = time.perf_counter()
        result = score(arch, **kwargs)
        seconds = float(getattr(result, "seconds", 0.0) or (time.perf_counter() - start))
        value = float(getattr(result, "value", result))
        higher = bool(getattr(result, "higher_is_better", True))
        kind = str(getattr(result, "kind", name))
        details = dict(getattr(result, "details", {}) or {})
        if not higher:
            details["raw_value"] = value
            value = -value
        return AccuracyResult(value, kind, seconds, details)

    return ProxyEntry(name, call, keys, (getattr(proxy, "__doc__", "") or "").strip().split("\n")[0])


def proxies() -> dict[str, ProxyEntry]:
    return {**_external_proxies(), **_LOCAL}


def check_proxy_spec(spec: ProxySpec, file: str, where: str) -> None:
    known = proxies()
    if spec.proxy not in known:
        raise InputError(file, f"{where}.proxy", f"a registered proxy (one of {', '.join(sorted(known))})",
                         repr(spec.proxy))
    keys = known[spec.proxy].budget_keys
    if keys is not None:
        for key in spec.budget:
            if key not in keys:
                allowed = ", ".join(sorted(keys)) or "none"
                raise InputError(file, f"{where}.budget.{key}", f"a budget key of {spec.proxy} ({allowed})",
                                 f"unknown key {key!r}")


def score_accuracy(spec: ProxySpec, arch: Architecture, ctx: EvalContext) -> AccuracyResult:
    entry = proxies()[spec.proxy]
    start = time.perf_counter()
    result = entry.fn(arch, ctx, **spec.budget)
    if not math.isfinite(result.value):
        raise FloatingPointError(f"{spec.proxy} returned {result.value}")
    if not result.seconds:
        result = AccuracyResult(result.value, result.kind, time.perf_counter() - start, result.details)
    return result


class LatencyEvaluator:
    """Latency of candidates by the experiment's source; `measure()` always times on this machine."""

    def __init__(self, spec: LatencySpec, imgsz: int, db: Path | None) -> None:
        self.spec = spec
        self.imgsz = spec.imgsz or imgsz
        self.db = db

    @cached_property
    def _backend(self) -> Any:
        from nasearch.latency.backend import get_backend

        threads = self.spec.threads or 1
        return get_backend(self.spec.backend, self.spec.precision, self.spec.batch, threads)

    def measure(self, fused: nn.Module) -> LatencyResult:
        timing = self._backend.measure_model(fused, self.imgsz)
        s = self.spec
        method = f"{s.backend} {s.precision} b{s.batch} t{s.threads or 1}"
        return LatencyResult(float(timing.median_ms), True, method,
                             {"p10_ms": timing.p10_ms, "p90_ms": timing.p90_ms, "runs": timing.runs,
                              "stable": timing.stable})

    def screen(self, arch: Architecture, fused: nn.Module) -> LatencyResult:
        s = self.spec
        if s.source == "measure":
            return self.measure(fused)
        if s.source == "target":
            from nasearch.latency.t4_model import predict_t4

            doc = predict_t4(arch, s.precision, self.imgsz, s.batch, s.float_layers)
            return LatencyResult(float(doc["predicted_ms"]), False,
                                 f"{doc['target']} {doc['method']} {doc['mode']}",
                                 {k: v for k, v in doc.items() if k in ("per_image_ms", "float_layers")})
        return self._predict_db(arch)

    def _predict_db(self, arch: Architecture) -> LatencyResult:
        """Block sums plus the fitted overhead; blocks the database lacks are measured now when the
        database's device is this machine (and stored, so later candidates reuse them)."""
        from nasearch.latency.db import LatencyDB
        from nasearch.latency.predict import predict_from_db, select_fingerprint

        s = self.spec
        try:
            local = self._backend
        except InputError:
            local = None  # this machine cannot run that backend: stored figures only
        assert self.db is not None
        with LatencyDB(self.db, create=False) as database:
            fp = select_fingerprint(database, local.fingerprint() if local else None, s.precision, s.batch,
                                    s.backend, s.threads)
            doc = predict_from_db(database, fp, arch, self.imgsz, local)
        return LatencyResult(float(doc["predicted_ms"]), False, f"database {doc['method']} ({doc['device']})",
                             {"units_ms": doc["units_ms"], "units_measured_now": doc["units_measured_now"]})

    @property
    def confirms(self) -> bool:
        """Whether promoted candidates get a real measurement (screening was a prediction)."""
        return self.spec.measure_promoted and self.spec.source != "measure"


def default_data_cache() -> Path:
    return Path(os.environ.get("NASEARCH_CACHE", Path.home() / ".cache" / "nasearch"))


def dataset_provider(exp: LoadedExperiment) -> Callable[[], Path]:
    """The experiment's dataset, made on first use if it is the synthetic default."""
    cached: list[Path] = []

    def provide() -> Path:
        if cached:
            return cached[0]
        if exp.dataset_path is not None:
            cached.append(exp.dataset_path)
            return exp.dataset_path
        trees = exp.spec.dataset.trees
        if trees is not None:
            from nasearch.data.trees import VERSION, ensure_trees

            root = Path(trees.cache).expanduser() if trees.cache else default_data_cache()
            cached.append(ensure_trees(root / f"trees-{VERSION}-tile{trees.tile}-overlap{trees.overlap}",
                                       trees.tile, trees.overlap, exp.trees_wheel))
            return cached[0]
        from nasearch.data import ensure_synthetic

        syn = exp.spec.dataset.synthetic
        root = Path(syn.cache).expanduser() if syn.cache else default_data_cache()
        target = root / f"synthetic-{syn.images}x{syn.imgsz}-seed{syn.seed}"
        cached.append(ensure_synthetic(target, syn.images, syn.imgsz, syn.seed))
        return cached[0]

    return provide
