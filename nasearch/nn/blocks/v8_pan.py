"""`v8_pan`: YOLOv8's C2f path-aggregation neck (top-down then bottom-up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nasearch.nn.blocks.c2f import C2f
from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.v8_pan import V8PanParams

Fuse = Callable[[int, Any], nn.Module]  # (input width, level params) -> the block that fuses a concat
Down = Callable[[int], nn.Module]  # width -> a stride-2 block keeping it


class V8Pan(nn.Module):
    """The topology; `fuse_block` builds each level's block (YOLOv8: C2f; YOLO11: C3k2), `down2` the P4 to P5
    downsampling (default a strided 3×3 Conv; YOLOv10: SCDown)."""

    def __init__(
        self,
        p: V8PanParams,
        ctx: BuildContext,
        levels: list[int],
        fuse_block: Fuse | None = None,
        down2: Down | None = None,
    ) -> None:
        super().__init__()
        c3, c4, c5 = levels[-3:]
        make = fuse_block or (lambda c_in, lvl: C2f(c_in, lvl.out, lvl.blocks, p.shortcut, ctx, p.e))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.td1 = make(c5 + c4, p.up1)
        self.td2 = make(p.up1.out + c3, p.up2)
        self.down1 = ConvBNAct(p.up2.out, p.up2.out, 3, 2, ctx)
        self.bu1 = make(p.up2.out + p.up1.out, p.down1)
        self.down2 = down2(p.down1.out) if down2 else ConvBNAct(p.down1.out, p.down1.out, 3, 2, ctx)
        self.bu2 = make(p.down1.out + c5, p.down2)
        self.out_channels = [p.up2.out, p.down1.out, p.down2.out]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = feats[-3:]
        t4 = self.td1(torch.cat([self.up(c5), c4], 1))
        p3 = self.td2(torch.cat([self.up(t4), c3], 1))
        p4 = self.bu1(torch.cat([self.down1(p3), t4], 1))
        p5 = self.bu2(torch.cat([self.down2(p4), c5], 1))
        return [p3, p4, p5]


@register("v8_pan")
def build(p: V8PanParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, list[int]]:
    """Upsample+concat+C2f twice (to P3), then strided Conv+concat+C2f twice (to P4, P5)."""
    neck = V8Pan(p, ctx, levels)
    return neck, neck.out_channels
