"""What the search scores a candidate by: its latency on the target and an accuracy proxy.

Latency comes from one of three sources (`objectives.latency.source`): `measure` (a backend of
`nasearch.latency` timing the fused model on this machine: measured), `database` (the block latency
database: predicted) or `target` (a latency model of a device, e.g. the T4 roofline: predicted).

Accuracy is a proxy of `nasearch.proxy.registry` called by name (`ProxyResult`, higher is better): the
#params and GFLOPs baselines, the zero-cost scores and short-training proxy mAP. The search keeps no
proxies of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from torch import nn

from nasearch.envpaths import env_path, user_cache
from nasearch.errors import InputError
from nasearch.latency.backend import get_backend
from nasearch.latency.predict import predict_latency
from nasearch.latency.t4_model import predict_t4
from nasearch.proxy.result import ProxyResult
from nasearch.search.experiment import LatencySpec, LoadedExperiment, ProxySpec
from nasearch.space import Architecture


@dataclass(frozen=True)
class LatencyResult:
    ms: float
    measured: bool
    method: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalContext:
    """What the search hands every proxy besides the architecture and the budget: sizes, seed, data."""

    imgsz: int
    nc: int
    seed: int
    dataset: Callable[[], Path] | None = None  # ensures and returns the dataset (synthetic on first use)


def check_proxy_spec(spec: ProxySpec, file: str, where: str) -> None:
    """The proxy is in `nasearch.proxy.registry` and every budget key is one of its keys."""
    from nasearch.proxy import registry

    if spec.proxy not in registry.names():
        raise InputError(
            file,
            f"{where}.proxy",
            f"a registered proxy (one of {', '.join(sorted(registry.names()))})",
            repr(spec.proxy),
        )
    keys = registry.get(spec.proxy).budget_keys
    for key in spec.budget:
        if key not in keys:
            allowed = ", ".join(sorted(keys)) or "none"
            raise InputError(
                file, f"{where}.budget.{key}", f"a budget key of {spec.proxy} ({allowed})", f"unknown key {key!r}"
            )


def score_accuracy(spec: ProxySpec, arch: Architecture, ctx: EvalContext) -> ProxyResult:
    """The registry's proxy `spec.proxy` on `arch` with the search's size, classes, seed and data."""
    from nasearch.proxy import registry

    proxy = registry.get(spec.proxy)
    kwargs: dict[str, Any] = {"imgsz": ctx.imgsz, "seed": ctx.seed, "nc": ctx.nc, **spec.budget}
    if proxy.needs_data and ctx.dataset is not None:
        kwargs.setdefault("data", ctx.dataset())
    result = registry.score(spec.proxy, arch, **kwargs)
    if not math.isfinite(result.value):
        raise FloatingPointError(f"{spec.proxy} returned {result.value}")
    return result


class LatencyEvaluator:
    """Latency of candidates by the experiment's source; `measure()` always times on this machine."""

    def __init__(self, spec: LatencySpec, imgsz: int, db: Path | None) -> None:
        self.spec = spec
        self.imgsz = spec.imgsz or imgsz
        self.db = db

    @cached_property
    def _backend(self) -> Any:
        threads = self.spec.threads or 1
        return get_backend(self.spec.backend, self.spec.precision, self.spec.batch, threads)

    def measure(self, fused: nn.Module) -> LatencyResult:
        timing = self._backend.measure_model(fused, self.imgsz)
        s = self.spec
        method = f"{s.backend} {s.precision} b{s.batch} t{s.threads or 1}"
        return LatencyResult(
            float(timing.median_ms),
            True,
            method,
            {"p10_ms": timing.p10_ms, "p90_ms": timing.p90_ms, "runs": timing.runs, "stable": timing.stable},
        )

    def screen(self, arch: Architecture, fused: nn.Module) -> LatencyResult:
        s = self.spec
        if s.source == "measure":
            return self.measure(fused)
        if s.source == "target":
            doc = predict_t4(arch, s.precision, self.imgsz, s.batch, s.float_layers)
            return LatencyResult(
                float(doc["predicted_ms"]),
                False,
                f"{doc['target']} {doc['method']} {doc['mode']}",
                {k: v for k, v in doc.items() if k in ("per_image_ms", "float_layers")},
            )
        return self._predict_db(arch)

    def _predict_db(self, arch: Architecture, missing: str = "measure") -> LatencyResult:
        """Block sums plus the fitted overhead; blocks the database lacks are measured now when the
        database's device is this machine (and stored, so later candidates reuse them), or `estimate`d
        from the stored blocks (nothing measured: the latency screen's prediction)."""

        s = self.spec
        assert self.db is not None
        doc = predict_latency(
            self.db, arch, self.imgsz, lambda: self._backend, s.precision, s.batch, s.backend, s.threads, missing
        )
        return LatencyResult(
            float(doc["predicted_ms"]),
            False,
            f"database {doc['method']} ({doc['device']})",
            {"units_ms": doc["units_ms"], "units_measured_now": doc["units_measured_now"]},
        )

    def predict_stored(self, arch: Architecture) -> LatencyResult | None:
        """A prediction from the latency database alone (nothing measured), if the experiment names one."""
        if self.db is None or not self.db.exists():
            return None
        return self._predict_db(arch, missing="estimate")

    @property
    def confirms(self) -> bool:
        """Whether promoted candidates get a real measurement (screening was a prediction)."""
        return self.spec.measure_promoted and self.spec.source != "measure"


def default_data_cache() -> Path:
    return env_path("NASEARCH_CACHE", user_cache())


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
            cached.append(
                ensure_trees(
                    root / f"trees-{VERSION}-tile{trees.tile}-overlap{trees.overlap}",
                    trees.tile,
                    trees.overlap,
                    exp.trees_wheel,
                )
            )
            return cached[0]
        from nasearch.data import ensure_synthetic

        syn = exp.spec.dataset.synthetic
        root = Path(syn.cache).expanduser() if syn.cache else default_data_cache()
        target = root / f"synthetic-{syn.images}x{syn.imgsz}-seed{syn.seed}"
        cached.append(ensure_synthetic(target, syn.images, syn.imgsz, syn.seed))
        return cached[0]

    return provide
