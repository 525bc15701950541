"""`v10_pan`: YOLOv10's neck, YOLOv8's path aggregation with C2f or C2fCIB levels and SCDown from P4 to P5."""

from __future__ import annotations

from torch import nn

from nasearch.nn.blocks.c2fcib import make_c2f
from nasearch.nn.blocks.scdown import SCDown
from nasearch.nn.blocks.v8_pan import V8Pan
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.v10_pan import C2fInnerLevel, V10PanParams


@register("v10_pan")
def build(p: V10PanParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, list[int]]:
    """Upsample+concat+C2f(CIB) twice (to P3), then strided Conv, SCDown (each +concat+C2f(CIB)) to P4, P5."""

    def level(c_in: int, lvl: C2fInnerLevel) -> nn.Module:
        shortcut = p.shortcut if lvl.block == "bottleneck" else p.cib_shortcut
        return make_c2f(lvl.block, c_in, lvl.out, lvl.blocks, shortcut, ctx, p.e)

    neck = V8Pan(p, ctx, levels, level, down2=lambda c: SCDown(c, c, ctx))
    return neck, neck.out_channels
