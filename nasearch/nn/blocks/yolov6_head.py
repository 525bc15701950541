"""`v6_head`: YOLOv6 3.0's efficient decoupled head (the deploy form, without the anchor-aided branch).

Per level: a 1×1 stem, then one 3×3 conv per branch and a 1×1 prediction. YOLOv6-N/S regress the four
ltrb distances directly (`dfl: false`, one "bin"); M/L predict a distribution over reg_max + 1 bins (DFL)
and take its expectation at deploy.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.yolov6_head import V6HeadParams

PRIOR = 0.01  # initial class probability: keeps the early classification loss from swamping training


class V6HeadLevel(nn.Module):
    def __init__(self, c: int, bins: int, ctx: BuildContext, act: str | None) -> None:
        super().__init__()
        self.stem = ConvBNAct(c, c, 1, 1, ctx, act)
        self.cls_conv = ConvBNAct(c, c, 3, 1, ctx, act)
        self.reg_conv = ConvBNAct(c, c, 3, 1, ctx, act)
        self.cls_pred = nn.Conv2d(c, ctx.nc, 1)
        self.reg_pred = nn.Conv2d(c, 4 * bins, 1)
        nn.init.constant_(self.cls_pred.bias, -math.log((1 - PRIOR) / PRIOR))
        nn.init.constant_(self.reg_pred.bias, 1.0)  # one stride per side (or uniform bins with DFL)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        return self.reg_pred(self.reg_conv(x)), self.cls_pred(self.cls_conv(x))


class V6Head(nn.Module):
    def __init__(self, levels: list[int], bins: int, ctx: BuildContext, act: str | None) -> None:
        super().__init__()
        self.bins = bins
        self.nc = ctx.nc
        self.levels = nn.ModuleList(V6HeadLevel(c, bins, ctx, act) for c in levels)

    def forward(self, feats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [level(x) for level, x in zip(self.levels, feats, strict=True)]


@register("v6_head")
def build(p: V6HeadParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, None]:
    """Decoupled head at the neck's widths; bins = reg_max + 1 with DFL, else 1 (direct ltrb distances)."""
    bins = ctx.reg_max + 1 if p.dfl else 1
    return V6Head(levels, bins, ctx, p.act), None
