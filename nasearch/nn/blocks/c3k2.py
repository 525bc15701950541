"""YOLO11's C3k2 block (a C2f whose inner blocks are C3k or half-width bottlenecks) and `c3k2_stage`."""

from __future__ import annotations

from torch import nn

from nasearch.nn.blocks.c2f import Bottleneck, C2f
from nasearch.nn.blocks.c3 import C3
from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.c3k2 import C3k2StageParams

C3K_DEPTH = 2  # bottlenecks inside each C3k (fixed in YOLO11)


class C3k2(C2f):
    """C2f's split-and-chain; each inner block is a C3k (C3 with 3×3 bottlenecks, depth 2) when `c3k`,
    else a Bottleneck of hidden width c/2."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        n: int,
        c3k: bool,
        shortcut: bool,
        ctx: BuildContext,
        e: float = 0.5,
        act: str | None = None,
    ) -> None:
        def inner(c: int) -> nn.Module:
            if c3k:
                return C3(c, c, C3K_DEPTH, shortcut, ctx, 0.5, act, (3, 3))
            return Bottleneck(c, c, shortcut, ctx, 0.5, act)

        super().__init__(c_in, c_out, n, shortcut, ctx, e, act, inner=inner)


@register("c3k2_stage")
def build(p: C3k2StageParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLO11 backbone stage: Conv 3×3 stride 2 (to `down`), then C3k2 (to `out`)."""
    down = p.down or p.out
    stage = nn.Sequential(
        ConvBNAct(c_in, down, 3, 2, ctx, p.act), C3k2(down, p.out, p.blocks, p.c3k, p.shortcut, ctx, p.e, p.act)
    )
    return stage, p.out
