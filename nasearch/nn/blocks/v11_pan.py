"""`v11_pan`: YOLO11's neck, YOLOv8's path aggregation with C3k2 blocks (each level may use C3k inside)."""

from __future__ import annotations

from torch import nn

from nasearch.nn.blocks.c3k2 import C3k2
from nasearch.nn.blocks.v8_pan import V8Pan
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.v11_pan import C3k2Level, V11PanParams


@register("v11_pan")
def build(p: V11PanParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, list[int]]:
    """Upsample+concat+C3k2 twice (to P3), then strided Conv+concat+C3k2 twice (to P4, P5)."""

    def c3k2(c_in: int, lvl: C3k2Level) -> nn.Module:
        return C3k2(c_in, lvl.out, lvl.blocks, lvl.c3k, p.shortcut, ctx, p.e)

    neck = V8Pan(p, ctx, levels, c3k2)
    return neck, neck.out_channels
