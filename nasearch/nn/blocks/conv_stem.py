"""`conv_stem`: one strided Conv-BN-Act from the image (the P1 of YOLOv8, YOLO11 and YOLOv5)."""

from __future__ import annotations

from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.conv_stem import ConvStemParams


@register("conv_stem")
def build(p: ConvStemParams, ctx: BuildContext, c_in: int) -> tuple[ConvBNAct, int]:
    """Conv k×k stride 2 (padding `pad`, default k // 2) + BN + act."""
    return ConvBNAct(c_in, p.out, p.k, 2, ctx, act=p.act, p=p.pad), p.out
