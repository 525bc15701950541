"""Export a built model to ONNX: fused deploy form, static shapes, opset >= 17, checked, written atomically.

The TorchScript-based exporter is used because it is ~40× faster than the dynamo one on these
convolutional graphs (profiling exports hundreds of blocks); the dynamo exporter is the fallback.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from nasearch import atomic
from nasearch.nn.inspect import fused_copy

MIN_OPSET = 17
DECODED_OUTPUTS = ("boxes", "scores")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch with `n` intra-op threads for a while: tracing and exporting are cheap, and on a busy
    machine torch's thread pool waiting for descheduled threads costs more than the work itself."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def raw_output_names(levels: int = 3) -> list[str]:
    """Names of the raw head outputs: box and class logits per level, P3 first."""
    return [f"{kind}_p{level + 3}" for level in range(levels) for kind in ("box", "cls")]


def export_module(
    module: nn.Module,
    inputs: Sequence[torch.Tensor],
    path: str | Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int = MIN_OPSET,
    check: bool = True,
) -> Path:
    """Export `module(*inputs)` as is (no fusing) to `path`; static shapes; checked; atomic write."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset}: at least {MIN_OPSET} is required")
    path = Path(path)
    module = module.eval()
    with atomic.staged(path) as tmp:
        with (
            torch.no_grad(),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            torch_threads(1),
        ):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    module,
                    tuple(inputs),
                    str(tmp),
                    dynamo=False,
                    opset_version=opset,
                    input_names=list(input_names),
                    output_names=list(output_names),
                    do_constant_folding=True,
                )
            except (RuntimeError, TypeError, ValueError, AttributeError):
                torch.onnx.export(
                    module,
                    tuple(inputs),
                    str(tmp),
                    dynamo=True,
                    opset_version=max(opset, 18),
                    input_names=list(input_names),
                    output_names=list(output_names),
                    external_data=False,
                )
        if check:
            import onnx  # only to check: importing this module loads torch alone

            onnx.checker.check_model(str(tmp))
    return path


def export_detector(
    model: nn.Module,
    path: str | Path,
    imgsz: int,
    batch: int = 1,
    raw: bool = False,
    opset: int = MIN_OPSET,
    fused: bool = False,
) -> Path:
    """Export a detector's deploy form at [batch, 3, imgsz, imgsz] with input `images` and outputs
    `boxes`, `scores` (or the raw per-level logits with `raw=True`, see `raw_output_names`).
    The model is copied and fused unless `fused=True` says it already is."""
    deploy = model.eval() if fused else fused_copy(model)
    previous = getattr(deploy, "export_raw", False)
    deploy.export_raw = raw
    try:
        names = raw_output_names() if raw else list(DECODED_OUTPUTS)
        x = torch.rand(batch, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
        return export_module(_Flat(deploy) if raw else deploy, [x], path, ["images"], names, opset)
    finally:
        deploy.export_raw = previous


class _Flat(nn.Module):
    """Raw outputs as a flat tuple (box, cls per level), so each gets its own ONNX output name."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for pair in self.model(x) for t in pair)
