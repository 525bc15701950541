"""Shared by the block tests: randomize every term a fusion must fold, then compare the two forms."""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.blocks.repvgg import QARepVGGBlock, RepVGGBlock
from nasearch.nn.inspect import fused_copy, fusion_max_abs_diff, randomize_bn


@torch.no_grad()
def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics, 1×1 biases and alphas far from 1, so a fusion that ignores any of them fails."""
    torch.manual_seed(seed)
    randomize_bn(module, seed=seed + 1)
    for name, p in module.named_parameters():
        if name.endswith("alpha"):
            p.uniform_(0.3, 1.7)
        elif name.endswith("conv1x1.bias"):
            p.normal_(0.0, 0.2)
    return module


class Many(nn.Module):
    """Feeds a tuple of inputs as separate arguments, or as one list (fusion_max_abs_diff passes one object)."""

    def __init__(self, m: nn.Module, as_list: bool = False) -> None:
        super().__init__()
        self.m, self.as_list = m, as_list

    def forward(self, xs):
        return self.m(list(xs)) if self.as_list else self.m(*xs)


def assert_fuses(module: nn.Module, x, as_list: bool = False) -> nn.Module:
    """Training form == fused form (max abs diff ≤ 1e-4), and no BN or unfused RepVGG block is left."""
    randomize(module)
    wrapped = Many(module, as_list) if isinstance(x, tuple) else module
    assert fusion_max_abs_diff(wrapped, x) <= 1e-4
    fused = fused_copy(module)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert not any(isinstance(m, RepVGGBlock | QARepVGGBlock) and not m.fused for m in fused.modules())
    return fused
