"""YOLOv5's C3 block and `c3_stage` (strided Conv then C3)."""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.blocks.c2f import Bottleneck
from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.c3 import C3StageParams


class C3(nn.Module):
    """Two 1×1 branches of c_out·e; n bottlenecks (kernels `k`) on one; concat both, 1×1 to c_out.

    YOLOv5's C3 uses 1×1-then-3×3 bottlenecks; YOLO11's C3k (inside C3k2) is the same block with 3×3 ones.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        n: int,
        shortcut: bool,
        ctx: BuildContext,
        e: float = 0.5,
        act: str | None = None,
        k: tuple[int, int] = (1, 3),
    ) -> None:
        super().__init__()
        hidden = int(c_out * e)
        self.cv1 = ConvBNAct(c_in, hidden, 1, 1, ctx, act)
        self.cv2 = ConvBNAct(c_in, hidden, 1, 1, ctx, act)
        self.cv3 = ConvBNAct(2 * hidden, c_out, 1, 1, ctx, act)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, ctx, 1.0, act, k) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


@register("c3_stage")
def build(p: C3StageParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLOv5 backbone stage: Conv 3×3 stride 2, then C3."""
    stage = nn.Sequential(
        ConvBNAct(c_in, p.out, 3, 2, ctx, p.act), C3(p.out, p.out, p.blocks, p.shortcut, ctx, p.e, p.act)
    )
    return stage, p.out
