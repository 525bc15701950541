"""Counting and checking built models: parameters, FLOPs (torch's flop counter), activations, fusion equivalence."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasearch.nn.common import ACTIVATIONS, fuse_model


def count_params(model: nn.Module) -> int:
    """Every nn.Parameter, trainable or not (the convention published counts use)."""
    return sum(p.numel() for p in model.parameters())


ACTIVATION_KINDS = tuple(set(ACTIVATIONS.values()))


@torch.no_grad()
def probe_forward(model: nn.Module, imgsz: int, batch: int = 1) -> None:
    """One forward pass of a blank image in eval mode, for counting; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        model(torch.zeros(batch, 3, imgsz, imgsz, device=device))  # works on the meta device too (shapes only)
    finally:
        model.train(was_training)


def count_flops(model: nn.Module, imgsz: int, batch: int = 1) -> int:
    """FLOPs of one forward pass (2 × multiply-accumulates), counted by torch.utils.flop_counter."""
    counter = FlopCounterMode(display=False)
    with counter:
        probe_forward(model, imgsz, batch)
    return int(counter.get_total_flops())


def count_activations(model: nn.Module, imgsz: int) -> int:
    """Elements output by every activation layer in one forward pass (batch 1): the units a NASWOT kernel is
    built from, and a measure of the memory traffic that bounds small models' latency on a CPU."""
    counts: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: counts.append(out.numel()))
        for m in model.modules()
        if isinstance(m, ACTIVATION_KINDS)
    ]
    try:
        probe_forward(model, imgsz)
    finally:
        for hook in hooks:
            hook.remove()
    return sum(counts)


def uninitialized(build: Callable[[], nn.Module]) -> nn.Module:
    """A model for counting only: built on the meta device and given empty CPU storage, so no weight is
    initialised (most of a build's time); its outputs are meaningless, its shapes and counts exact."""
    with torch.device("meta"):
        model = build()
    return model.to_empty(device="cpu")


def fused_copy(model: nn.Module) -> nn.Module:
    """The deploy form of a model: a deep copy with every block re-parameterized and BN folded."""
    return fuse_model(copy.deepcopy(model).eval())


@dataclass(frozen=True)
class ModelSize:
    """The size figures every table of the project quotes: parameters of the training form (what published
    counts use) and GFLOPs of one image through the fused deploy form (what runs)."""

    params: int
    gflops: float


def model_size(model: nn.Module, imgsz: int, fused: nn.Module | None = None) -> ModelSize:
    """Size of a training-form model at imgsz; pass its fused copy when one is at hand, to avoid another."""
    fused = fused_copy(model) if fused is None else fused
    return ModelSize(count_params(model), count_flops(fused, imgsz) / 1e9)


@torch.no_grad()
def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms, so fusion bugs cannot hide."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            if m.weight is not None:
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def _flatten(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, list | tuple):
        return [t for o in out for t in _flatten(o)]
    return []


@torch.no_grad()
def fusion_max_abs_diff(model: nn.Module, x: torch.Tensor) -> float:
    """Max |training form − fused form| over every output tensor, eval mode, same input."""
    model = model.eval()
    ref = _flatten(model(x))
    fused = fused_copy(model)
    got = _flatten(fused(x))
    return max(float((a - b).abs().max()) for a, b in zip(ref, got, strict=True))
