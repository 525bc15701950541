"""`v8_head`: YOLOv8's (and YOLOv5u's) decoupled head (two 3×3 convs per branch, DFL box branch of reg_max bins)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from nasearch.nn.common import ConvBNAct
from nasearch.nn.detector import STRIDES
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.v8_head import V8HeadParams

Branch = Callable[[int, int, int, BuildContext], nn.Sequential]


def conv_branch(c_in: int, width: int, c_out: int, ctx: BuildContext) -> nn.Sequential:
    """Two 3×3 Conv-BN-Act, then a 1×1 conv to the outputs (every branch of YOLOv8 and YOLOv5u)."""
    return nn.Sequential(
        ConvBNAct(c_in, width, 3, 1, ctx), ConvBNAct(width, width, 3, 1, ctx), nn.Conv2d(width, c_out, 1)
    )


class V8Head(nn.Module):
    """Per level a box branch (4·bins DFL logits) and a class branch; `cls_branch` builds the latter."""

    def __init__(
        self, levels: list[int], ctx: BuildContext, box_width: int, cls_width: int, cls_branch: Branch = conv_branch
    ) -> None:
        super().__init__()
        self.bins = max(ctx.reg_max, 1)
        self.nc = ctx.nc
        self.box = nn.ModuleList(conv_branch(c, box_width, 4 * self.bins, ctx) for c in levels)
        self.cls = nn.ModuleList(cls_branch(c, cls_width, ctx.nc, ctx) for c in levels)
        self.init_biases()

    def init_biases(self, imgsz: int = 640) -> None:
        """Start with ~5 objects per image spread over the cells, so early training is stable."""
        for box, cls, s in zip(self.box, self.cls, STRIDES, strict=True):
            nn.init.constant_(box[-1].bias, 1.0)
            nn.init.constant_(cls[-1].bias, math.log(5 / self.nc / (imgsz / s) ** 2))

    def forward(self, feats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(b(x), c(x)) for x, b, c in zip(feats, self.box, self.cls, strict=True)]


def branch_widths(p: V8HeadParams, ctx: BuildContext, levels: list[int]) -> tuple[int, int]:
    """Widths default to YOLOv8's rule: box max(16, c3/4, 4·reg_max), class max(c3, min(nc, 100))."""
    box_width = p.box_width or max(16, levels[0] // 4, 4 * max(ctx.reg_max, 1))
    cls_width = p.cls_width or max(levels[0], min(ctx.nc, 100))
    return box_width, cls_width


@register("v8_head")
def build(p: V8HeadParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, None]:
    """YOLOv8's (and YOLOv5u's) head; widths default to box max(16, c3/4, 4·reg_max), class max(c3, min(nc, 100))."""
    return V8Head(levels, ctx, *branch_widths(p, ctx, levels)), None
