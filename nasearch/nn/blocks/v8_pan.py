"""`v8_pan`: YOLOv8's C2f path-aggregation neck (top-down then bottom-up)."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from nasearch.nn.blocks.c2f import C2f
from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, Params, register


class PanLevel(Params):
    out: Annotated[int, Field(ge=8, le=4096)]
    blocks: Annotated[int, Field(ge=1, le=16)]


class V8PanParams(Params):
    up1: PanLevel
    up2: PanLevel
    down1: PanLevel
    down2: PanLevel
    shortcut: bool = False
    e: Annotated[float, Field(gt=0, le=1)] = 0.5


class V8Pan(nn.Module):
    def __init__(self, p: V8PanParams, ctx: BuildContext, levels: list[int]) -> None:
        super().__init__()
        c3, c4, c5 = levels[-3:]
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.td1 = C2f(c5 + c4, p.up1.out, p.up1.blocks, p.shortcut, ctx, p.e)
        self.td2 = C2f(p.up1.out + c3, p.up2.out, p.up2.blocks, p.shortcut, ctx, p.e)
        self.down1 = ConvBNAct(p.up2.out, p.up2.out, 3, 2, ctx)
        self.bu1 = C2f(p.up2.out + p.up1.out, p.down1.out, p.down1.blocks, p.shortcut, ctx, p.e)
        self.down2 = ConvBNAct(p.down1.out, p.down1.out, 3, 2, ctx)
        self.bu2 = C2f(p.down1.out + c5, p.down2.out, p.down2.blocks, p.shortcut, ctx, p.e)
        self.out_channels = [p.up2.out, p.down1.out, p.down2.out]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = feats[-3:]
        t4 = self.td1(torch.cat([self.up(c5), c4], 1))
        p3 = self.td2(torch.cat([self.up(t4), c3], 1))
        p4 = self.bu1(torch.cat([self.down1(p3), t4], 1))
        p5 = self.bu2(torch.cat([self.down2(p4), c5], 1))
        return [p3, p4, p5]


@register("v8_pan", "neck", V8PanParams)
def build(p: V8PanParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, list[int]]:
    """Upsample+concat+C2f twice (to P3), then strided Conv+concat+C2f twice (to P4, P5)."""
    neck = V8Pan(p, ctx, levels)
    return neck, neck.out_channels
