"""SynFlow (Tanaka et al. 2020): the synaptic flow every weight carries, without data.

With every parameter replaced by its absolute value, BN removed and an all-ones input, R is the sum of the
network's outputs and the score is Σ_θ |θ ⊙ ∂R/∂θ| over the weights of every convolution and linear layer.
Because all signals are positive, R is the total flow from input to output and each term is the share one
weight carries; the paper's conservation law makes the per-layer sums equal in a bias-free chain, so the
score rewards networks that keep flow through every layer instead of bottlenecking it.

Detector adaptation: R sums the raw head outputs (every box and class logit of the three levels), so the
whole trained network — head included — is scored. The computation runs in float64 (flow grows
geometrically with depth) and the score is reported as its natural log. Being data-free and sign-free, the
score is unchanged by flipping the sign of any weight and by any BN statistics.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasearch.nn.detector import Detector
from nasearch.proxy.surgery import CONV_TYPES, check_input_shape, without_bn

WEIGHTED = (*CONV_TYPES, nn.Linear)


def layer_flows(model: nn.Module, input_shape: tuple[int, ...], forward: str | None = None) -> dict[str, float]:
    """Per-layer Σ|θ ⊙ ∂R/∂θ| (layer name → value); `forward` names the method giving the outputs."""
    net = without_bn(model).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    for p in net.parameters():
        p.requires_grad_(True)
    x = torch.ones(input_shape, dtype=torch.float64)
    out = getattr(net, forward)(x) if forward else net(x)
    total = _total(out)
    if not torch.isfinite(total):
        raise FloatingPointError("synaptic flow overflowed float64 (network too deep for SynFlow)")
    total.backward()
    flows = {}
    for name, module in net.named_modules():
        if isinstance(module, WEIGHTED) and module.weight.grad is not None:
            flows[name] = float((module.weight.detach() * module.weight.grad).abs().sum())
    return flows


def _total(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.sum()
    if isinstance(out, list | tuple):
        return sum((_total(o) for o in out), torch.zeros((), dtype=torch.float64))
    raise TypeError(f"cannot sum a model output of type {type(out).__name__}")


def synflow_score(model: Detector, input_shape: tuple[int, ...]) -> float:
    """log Σ_θ |θ ⊙ ∂R/∂θ| of the detector (one all-ones image of the given size; batch is ignored)."""
    _, c, h, w = check_input_shape(input_shape)
    flows = layer_flows(model, (1, c, h, w), forward="forward_raw")
    total = sum(flows.values())
    if not math.isfinite(total) or total <= 0:
        raise FloatingPointError(f"synflow total {total} is not a positive finite number")
    return math.log(total)
