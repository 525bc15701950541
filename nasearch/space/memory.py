"""The resource guard: memory a model will need, estimated on the meta device before anything is allocated.

Weights are counted from a build on the meta device (no storage, no initialisation). Activations come from
one forward pass on the meta device (shapes only), with a hook on every leaf module adding up the floats it
produces. The estimates are coarse on purpose: they exist to refuse a model that cannot fit (a 12 G-parameter
architecture needs about 49 GB for its weights alone) before the machine starts swapping, not to budget.

The limit is the memory the kernel reports as available, or `--max-memory GB` (env `NASEARCH_MAX_MEMORY_GB`);
`--no-memory-guard` (the value `off`) disables the guard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from nasearch.errors import InputError
from nasearch.space.arch import Architecture

GUARD_ENV = "NASEARCH_MAX_MEMORY_GB"
FLOAT_BYTES = 4
# weights + gradients + two optimizer moments (AdamW; SGD keeps one) + the EMA copy
TRAIN_WEIGHT_COPIES = 5
# an inference pass holds a leaf's input and output plus the concatenations and skips around it
INFERENCE_LIVE_LEAVES = 3
# a data-loading or search process: the interpreter, torch and a small model (measured ~1 GB in issue 17)
WORKER_BYTES = 1 << 30
LOADER_PER_CORE = 4
LOADER_WORKER_BYTES = 1 << 29
GB = 1e9
OVERRIDE_HINT = "--max-memory GB or --no-memory-guard to override"


class MemoryLimitError(InputError):
    """A model (or a number of processes) that would not fit in the memory the guard allows."""


@dataclass(frozen=True)
class MemoryEstimate:
    params: int
    activation_floats: int  # sum over leaf modules of the floats one image produces (training keeps them all)
    peak_floats: int  # the largest single leaf output for one image

    @property
    def weights_bytes(self) -> int:
        return self.params * FLOAT_BYTES

    def inference_bytes(self, batch: int = 1, copies: int = 1) -> int:
        return copies * self.weights_bytes + batch * INFERENCE_LIVE_LEAVES * self.peak_floats * FLOAT_BYTES

    def training_bytes(self, batch: int) -> int:
        # saved activations for backward, plus their gradients at the widest point
        acts = batch * (self.activation_floats + self.peak_floats) * FLOAT_BYTES
        return TRAIN_WEIGHT_COPIES * self.weights_bytes + acts


def _build_meta(arch: Architecture) -> torch.nn.Module:
    from nasearch.space.build import build_model

    with torch.device("meta"):
        return build_model(arch)


def estimate(arch: Architecture, imgsz: int | None = None) -> MemoryEstimate:
    """Parameters and per-image activation floats of `arch` at `imgsz` (default: its own), on the meta device."""
    return _estimate(arch, _build_meta(arch), imgsz)


@torch.no_grad()
def _estimate(arch: Architecture, model: torch.nn.Module, imgsz: int | None) -> MemoryEstimate:
    model.train()  # training form: the widest graph (fusion only removes layers)
    size = imgsz or int(arch.data["imgsz"])
    outputs: list[int] = []

    def hook(_mod: torch.nn.Module, _inp: object, out: object) -> None:
        if isinstance(out, torch.Tensor):
            outputs.append(out.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not any(True for _ in m.children())]
    try:
        model(torch.empty(1, 3, size, size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return MemoryEstimate(sum(p.numel() for p in model.parameters()), sum(outputs), max(outputs, default=0))


def available_bytes() -> int:
    """Memory the kernel says can be allocated without swapping (MemAvailable), else free pages."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def memory_limit() -> int | None:
    """The guard's limit in bytes, or None when the guard is off."""
    raw = os.environ.get(GUARD_ENV, "").strip().lower()
    if raw == "off":
        return None
    if raw:
        try:
            return int(float(raw) * GB)
        except ValueError:
            raise InputError(GUARD_ENV, "max_memory", "a number of GB or 'off'", repr(raw)) from None
    return available_bytes()


def _refuse(arch: Architecture, what: str, need: int, limit: int, params: int) -> MemoryLimitError:
    return MemoryLimitError(
        arch.source,
        "<architecture>",
        f"at most {limit / GB:.1f} GB for {what} ({OVERRIDE_HINT})",
        f"an estimated {need / GB:.1f} GB ({_count(params)} parameters)",
    )


def _count(params: int) -> str:
    return f"{params / 1e9:.2f} G" if params >= 1e9 else f"{params / 1e6:.2f} M"


def check_weights(arch: Architecture, params: int, copies: int = 1) -> None:
    """Refuse before allocation when the weights alone would not fit."""
    limit = memory_limit()
    if limit is not None and copies * params * FLOAT_BYTES > limit:
        raise _refuse(arch, "the weights", copies * params * FLOAT_BYTES, limit, params)


def require(
    arch: Architecture, *, batch: int = 1, imgsz: int | None = None, training: bool = False, copies: int = 1
) -> MemoryEstimate | None:
    """Refuse `arch` when running it (inference with `copies` of the weights, or training at `batch`) would
    not fit; returns the estimate (None when the guard is off)."""
    limit = memory_limit()
    if limit is None:
        return None
    model = _build_meta(arch)
    check_weights(arch, sum(p.numel() for p in model.parameters()), copies if not training else TRAIN_WEIGHT_COPIES)
    est = _estimate(arch, model, imgsz)
    need = est.training_bytes(batch) if training else est.inference_bytes(batch, copies)
    if need > limit:
        what = f"training at batch {batch}" if training else "inference"
        raise _refuse(arch, f"{what} at {imgsz or arch.data['imgsz']} px", need, limit, est.params)
    return est


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_workers(
    workers: int,
    source: str = "--workers",
    field: str = "workers",
    per_core: int = 1,
    per_worker_bytes: int = WORKER_BYTES,
) -> None:
    """Refuse more processes than the cores (times `per_core`) or the memory can carry."""
    cores = usable_cores()
    limit = memory_limit()
    by_memory = max(1, limit // per_worker_bytes) if limit is not None else None
    allowed = min(cores * per_core, by_memory) if by_memory is not None else cores * per_core
    if workers > allowed:
        why = f"{cores} usable cores"
        if by_memory is not None:
            why += f", {limit / GB:.1f} GB free at ~{per_worker_bytes / GB:.1f} GB per process"
        raise MemoryLimitError(source, field, f"at most {allowed} processes ({why})", str(workers))


def check_loader_workers(workers: int | None) -> None:
    """Data-loading processes (forks sharing the parent's pages, mostly waiting on disk) are lighter than search
    processes: up to LOADER_PER_CORE per core at ~LOADER_WORKER_BYTES each."""
    if workers:
        check_workers(workers, per_core=LOADER_PER_CORE, per_worker_bytes=LOADER_WORKER_BYTES)
