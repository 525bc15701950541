"""The compiler: architecture → PyTorch detector, by looking every block up in the registry."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasearch.nn.detector import Detector
from nasearch.nn.registry import BuildContext, load_blocks
from nasearch.space.arch import Architecture


def build_block(spec: dict, ctx: BuildContext, c_in: Any) -> tuple[nn.Module, Any]:
    entry = load_blocks()[spec["type"]]
    params = entry.params.model_validate({k: v for k, v in spec.items() if k != "type"})
    return entry.build(params, ctx, c_in)


def build_model(arch: Architecture, nc: int | None = None) -> Detector:
    """A freshly initialised detector in training mode.

    Off the meta device, the weights are first counted on the meta device and the build is refused
    (`MemoryLimitError`) when they would not fit in memory, so nothing large is allocated in vain."""
    if torch.get_default_device().type != "meta":
        from nasearch.space.memory import check_weights

        with torch.device("meta"):
            params = sum(p.numel() for p in _build(arch, nc).parameters())
        check_weights(arch, params)
    return _build(arch, nc)


def _build(arch: Architecture, nc: int | None) -> Detector:
    data = arch.data
    ctx = BuildContext(
        act=data["act"],
        bn_eps=data["bn_eps"],
        bn_momentum=data["bn_momentum"],
        nc=nc or data["nc"],
        reg_max=data["reg_max"],
    )
    backbone = data["backbone"]
    stem, c = build_block(backbone["stem"], ctx, 3)
    stages, levels = nn.ModuleList(), []
    for spec in backbone["stages"]:
        stage, c = build_block(spec, ctx, c)
        stages.append(stage)
        levels.append(c)
    context, levels[-1] = build_block(backbone["context"], ctx, c)
    neck, outs = build_block(data["neck"], ctx, levels)
    head, _ = build_block(data["head"], ctx, list(outs))
    return Detector(stem, stages, context, neck, head, nc=ctx.nc, name=arch.name)
