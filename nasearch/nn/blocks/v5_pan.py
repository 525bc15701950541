"""`v5_pan`: YOLOv5's C3 path-aggregation neck, with a 1×1 lateral conv before each upsampling."""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.blocks.c3 import C3
from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.v5_pan import V5PanParams


class V5Pan(nn.Module):
    def __init__(self, p: V5PanParams, ctx: BuildContext, levels: list[int]) -> None:
        super().__init__()
        c3, c4, c5 = levels[-3:]
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.lat1 = ConvBNAct(c5, p.up1.lateral, 1, 1, ctx)
        self.td1 = C3(p.up1.lateral + c4, p.up1.out, p.up1.blocks, p.shortcut, ctx, p.e)
        self.lat2 = ConvBNAct(p.up1.out, p.up2.lateral, 1, 1, ctx)
        self.td2 = C3(p.up2.lateral + c3, p.up2.out, p.up2.blocks, p.shortcut, ctx, p.e)
        self.down1 = ConvBNAct(p.up2.out, p.up2.out, 3, 2, ctx)
        self.bu1 = C3(p.up2.out + p.up2.lateral, p.down1.out, p.down1.blocks, p.shortcut, ctx, p.e)
        self.down2 = ConvBNAct(p.down1.out, p.down1.out, 3, 2, ctx)
        self.bu2 = C3(p.down1.out + p.up1.lateral, p.down2.out, p.down2.blocks, p.shortcut, ctx, p.e)
        self.out_channels = [p.up2.out, p.down1.out, p.down2.out]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = feats[-3:]
        l5 = self.lat1(c5)
        l4 = self.lat2(self.td1(torch.cat([self.up(l5), c4], 1)))
        p3 = self.td2(torch.cat([self.up(l4), c3], 1))
        p4 = self.bu1(torch.cat([self.down1(p3), l4], 1))
        p5 = self.bu2(torch.cat([self.down2(p4), l5], 1))
        return [p3, p4, p5]


@register("v5_pan")
def build(p: V5PanParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, list[int]]:
    """1×1 lateral, upsample+concat+C3, twice (to P3); then strided Conv+concat (with the laterals)+C3 twice."""
    neck = V5Pan(p, ctx, levels)
    return neck, neck.out_channels
