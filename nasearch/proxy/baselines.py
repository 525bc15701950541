"""The two baselines every proxy has to beat: #parameters and FLOPs (White et al. 2022 found them the
strongest zero-cost predictors on average across tasks)."""

from __future__ import annotations

from torch import nn

from nasearch.nn.inspect import count_params, model_size
from nasearch.proxy.surgery import check_input_shape


def params_score(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> float:
    """Millions of parameters of the training-form model (every nn.Parameter)."""
    return count_params(model) / 1e6


def flops_score(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """GFLOPs (2 × multiply-accumulates) of one image through the fused (deploy) model."""
    _, _, h, w = check_input_shape(input_shape)
    if h != w:
        raise ValueError(f"FLOPs are counted on square inputs, got {h}x{w}")
    return model_size(model, h).gflops
