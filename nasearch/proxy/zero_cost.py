"""Zero-cost proxies of an architecture: build a fresh model from the seed, score it, time it.

Each function has the registry's signature `fn(arch, imgsz=None, seed=0, nc=None, **budget) -> ProxyResult`;
`imgsz` defaults to the architecture's, `nc` to its class count. The model-level scores live in
`entropy`, `zen`, `naswot`, `synflow` and `baselines` (each a function of a model and an input shape).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from nasearch.errors import InputError
from nasearch.nn.detector import Detector
from nasearch.proxy.baselines import flops_score, params_score
from nasearch.proxy.entropy import STAGE_WEIGHTS, entropy_score, stage_entropies
from nasearch.proxy.naswot import naswot_score
from nasearch.proxy.result import ProxyResult
from nasearch.proxy.synflow import synflow_score
from nasearch.proxy.zen import zen_score
from nasearch.space import Architecture, build_model
from nasearch.validation import check_imgsz, check_positive


def resolve_imgsz(arch: Architecture, imgsz: int | None) -> int:
    size = int(arch.data["imgsz"]) if imgsz is None else int(imgsz)
    check_imgsz(size)
    return size


def check_budget(name: str, value: int, low: int, high: int = 1_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError("--budget", name, f"an integer in {low}..{high}", repr(value))
    return value


def fresh_model(arch: Architecture, seed: int = 0, nc: int | None = None) -> Detector:
    """The architecture with its default initialisation drawn from `seed` (global RNG left untouched)."""
    check_positive(nc, "nc")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch, nc=nc)


def _timed(kind: str, run: Callable[[], tuple[float, dict]]) -> ProxyResult:
    start = time.perf_counter()
    value, details = run()
    return ProxyResult(float(value), kind, True, time.perf_counter() - start, details)


def entropy(arch: Architecture, imgsz: int | None = None, seed: int = 0, nc: int | None = None) -> ProxyResult:
    """MAE-DET entropy score (closed form; weights (0, 0, 1, 1, 6) over strides 2..32)."""
    size = resolve_imgsz(arch, imgsz)

    def run() -> tuple[float, dict]:
        model = fresh_model(arch, seed, nc)
        return entropy_score(model), {
            "stage_entropy": [round(e, 4) for e in stage_entropies(model)],
            "stage_weights": list(STAGE_WEIGHTS),
            "imgsz": size,
        }

    return _timed("mae_det_entropy", run)


def zen(
    arch: Architecture, imgsz: int | None = None, seed: int = 0, nc: int | None = None, batch: int = 4, repeats: int = 2
) -> ProxyResult:
    """Zen-score of the neck features (Gaussian weights, batch-statistics BN, mean over repeats)."""
    size = resolve_imgsz(arch, imgsz)
    check_budget("batch", batch, 2, 1024)
    check_budget("repeats", repeats, 1, 100)

    def run() -> tuple[float, dict]:
        model = fresh_model(arch, seed, nc)
        return zen_score(model, (batch, 3, size, size), seed, repeats), {
            "batch": batch,
            "repeats": repeats,
            "imgsz": size,
        }

    return _timed("zen", run)


def naswot(
    arch: Architecture, imgsz: int | None = None, seed: int = 0, nc: int | None = None, batch: int = 16
) -> ProxyResult:
    """NASWOT log|det K| of the activation-code kernel over a seeded N(0, 1) minibatch."""
    size = resolve_imgsz(arch, imgsz)
    check_budget("batch", batch, 2, 1024)

    def run() -> tuple[float, dict]:
        model = fresh_model(arch, seed, nc)
        return naswot_score(model, (batch, 3, size, size), seed), {"batch": batch, "imgsz": size}

    return _timed("naswot_logdet", run)


def synflow(arch: Architecture, imgsz: int | None = None, seed: int = 0, nc: int | None = None) -> ProxyResult:
    """log SynFlow of the whole detector (|weights|, BN off, all-ones image)."""
    size = resolve_imgsz(arch, imgsz)

    def run() -> tuple[float, dict]:
        model = fresh_model(arch, seed, nc)
        return synflow_score(model, (1, 3, size, size)), {"imgsz": size}

    return _timed("log_synflow", run)


def params(arch: Architecture, imgsz: int | None = None, seed: int = 0, nc: int | None = None) -> ProxyResult:
    """#parameters in millions (training form): the capacity baseline."""
    size = resolve_imgsz(arch, imgsz)
    return _timed("params_m", lambda: (params_score(fresh_model(arch, seed, nc)), {"imgsz": size}))


def flops(arch: Architecture, imgsz: int | None = None, seed: int = 0, nc: int | None = None) -> ProxyResult:
    """GFLOPs of the fused model for one image: the compute baseline."""
    size = resolve_imgsz(arch, imgsz)
    shape = (1, 3, size, size)
    return _timed("gflops", lambda: (flops_score(fresh_model(arch, seed, nc), shape), {"imgsz": size}))
