"""YOLOv8's C2f block, its Bottleneck, and `c2f_stage` (strided Conv then C2f)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.c2f import C2fStageParams


class Bottleneck(nn.Module):
    """Two Conv-BN-Act (3×3 and 3×3 by default; YOLOv5's C3 uses 1×1 then 3×3) with an optional residual
    (only when shapes agree)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        shortcut: bool,
        ctx: BuildContext,
        e: float = 1.0,
        act: str | None = None,
        k: tuple[int, int] = (3, 3),
    ) -> None:
        super().__init__()
        hidden = int(c_out * e)
        self.cv1 = ConvBNAct(c_in, hidden, k[0], 1, ctx, act)
        self.cv2 = ConvBNAct(hidden, c_out, k[1], 1, ctx, act)
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """1×1 to 2c, split, chain n inner blocks on one half, concat all (2+n)·c, 1×1 to c_out.

    The inner block is YOLOv8's Bottleneck unless `inner` (c → a c-to-c module) says otherwise (YOLO11's C3k2).
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
        inner: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.c = int(c_out * e)
        self.cv1 = ConvBNAct(c_in, 2 * self.c, 1, 1, ctx, act)
        self.cv2 = ConvBNAct((2 + n) * self.c, c_out, 1, 1, ctx, act)
        make = inner or (lambda c: Bottleneck(c, c, shortcut, ctx, 1.0, act))
        self.m = nn.ModuleList(make(self.c) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            y.append(block(y[-1]))
        return self.cv2(torch.cat(y, 1))


@register("c2f_stage")
def build(p: C2fStageParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLOv8 backbone stage: Conv 3×3 stride 2, then C2f."""
    stage = nn.Sequential(
        ConvBNAct(c_in, p.out, 3, 2, ctx, p.act), C2f(p.out, p.out, p.blocks, p.shortcut, ctx, p.e, p.act)
    )
    return stage, p.out
