"""`v11_head`: YOLO11's decoupled head, whose class branch is built from depthwise-separable convolutions."""

from __future__ import annotations

from torch import nn

from nasearch.nn.blocks.v8_head import V8Head, branch_widths
from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.v8_head import V8HeadParams


def dw_branch(c_in: int, width: int, c_out: int, ctx: BuildContext) -> nn.Sequential:
    """(depthwise 3×3 Conv-BN-Act, 1×1 Conv-BN-Act) twice, then a 1×1 conv to the outputs."""
    return nn.Sequential(
        ConvBNAct(c_in, c_in, 3, 1, ctx, groups=c_in),
        ConvBNAct(c_in, width, 1, 1, ctx),
        ConvBNAct(width, width, 3, 1, ctx, groups=width),
        ConvBNAct(width, width, 1, 1, ctx),
        nn.Conv2d(width, c_out, 1),
    )


@register("v11_head")
def build(p: V8HeadParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, None]:
    """Box branch as YOLOv8's; class branch depthwise-separable; widths by YOLOv8's rule unless given."""
    return V8Head(levels, ctx, *branch_widths(p, ctx, levels), cls_branch=dw_branch), None
