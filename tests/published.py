"""Shared by the preset tests: a preset against Ultralytics' parameter count and its docs' fused GFLOPs."""

from __future__ import annotations

import torch

from nasearch.nn.inspect import count_flops, count_params, fused_copy
from nasearch.space import build_model, load_arch

DFL_PROJECTION = 16  # Ultralytics counts DFL's fixed 1×1 projection (reg_max weights); here it is not a parameter


def assert_matches_ultralytics(name: str, params: int, gflops: float, tolerance: float = 0.03) -> None:
    """Parameters exactly Ultralytics' minus the DFL projection; fused GFLOPs at 640 within `tolerance`."""
    with torch.device("meta"):
        model = build_model(load_arch(name))
    assert params - count_params(model) == DFL_PROJECTION, count_params(model)
    fused_gflops = count_flops(fused_copy(model), 640) / 1e9
    assert abs(fused_gflops - gflops) / gflops <= tolerance, fused_gflops
