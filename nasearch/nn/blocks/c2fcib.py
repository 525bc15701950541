"""YOLOv10's compact inverted block (CIB), its large-kernel depthwise conv, and C2fCIB (a C2f of CIBs).

No block is declared here: `scdown_stage` and `v10_pan` build these through `make_c2f`.
"""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.blocks.c2f import C2f
from nasearch.nn.common import ConvBNAct, fused_conv, make_act
from nasearch.nn.registry import BuildContext

LARGE_KERNEL = 7  # YOLOv10's RepVGGDW: a 7×7 depthwise conv beside a 3×3 one


class LargeKernelDW(nn.Module):
    """act(BN(depthwise 7×7 x) + BN(depthwise 3×3 x)); `fuse()` pads the 3×3 into the 7×7: one depthwise conv."""

    def __init__(self, c: int, ctx: BuildContext, act: str | None = None) -> None:
        super().__init__()
        self.conv = ConvBNAct(c, c, LARGE_KERNEL, 1, ctx, "identity", groups=c)
        self.conv1: ConvBNAct | None = ConvBNAct(c, c, 3, 1, ctx, "identity", groups=c)
        self.act = make_act(act or ctx.act)

    @property
    def fused(self) -> bool:
        return self.conv1 is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) if self.conv1 is None else self.conv(x) + self.conv1(x)
        return self.act(y)

    @torch.no_grad()
    def fuse(self) -> None:
        if self.conv1 is None:
            return
        self.conv.fuse()
        self.conv1.fuse()
        pad = (LARGE_KERNEL - 3) // 2
        small = self.conv1.conv
        weight = self.conv.conv.weight + nn.functional.pad(small.weight, [pad] * 4)
        bias = self.conv.conv.bias + small.bias  # type: ignore[operator]
        self.conv.conv = fused_conv(self.conv.conv, weight, bias)
        self.conv1 = None


class CIB(nn.Module):
    """Depthwise 3×3, 1×1 to 2·hidden, depthwise 3×3 (or `LargeKernelDW` when `lk`), 1×1 to c_out, depthwise
    3×3; every conv Conv-BN-Act; a residual when `shortcut` and the widths agree."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        shortcut: bool,
        ctx: BuildContext,
        e: float = 0.5,
        lk: bool = False,
        act: str | None = None,
    ) -> None:
        super().__init__()
        mid = 2 * int(c_out * e)
        self.cv1 = nn.Sequential(
            ConvBNAct(c_in, c_in, 3, 1, ctx, act, groups=c_in),
            ConvBNAct(c_in, mid, 1, 1, ctx, act),
            LargeKernelDW(mid, ctx, act) if lk else ConvBNAct(mid, mid, 3, 1, ctx, act, groups=mid),
            ConvBNAct(mid, c_out, 1, 1, ctx, act),
            ConvBNAct(c_out, c_out, 3, 1, ctx, act, groups=c_out),
        )
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        return x + y if self.add else y


class C2fCIB(C2f):
    """C2f's split-and-chain whose inner blocks are CIBs at the C2f's hidden width (expansion 1)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        n: int,
        shortcut: bool,
        ctx: BuildContext,
        lk: bool = False,
        e: float = 0.5,
        act: str | None = None,
    ) -> None:
        super().__init__(c_in, c_out, n, shortcut, ctx, e, act, inner=lambda c: CIB(c, c, shortcut, ctx, 1.0, lk, act))


def make_c2f(
    block: str, c_in: int, c_out: int, n: int, shortcut: bool, ctx: BuildContext, e: float = 0.5, act: str | None = None
) -> C2f:
    """A C2f whose inner blocks are `block` ("bottleneck" | "cib" | "cib_lk", see `fields.C2fInner`)."""
    if block == "bottleneck":
        return C2f(c_in, c_out, n, shortcut, ctx, e, act)
    return C2fCIB(c_in, c_out, n, shortcut, ctx, block == "cib_lk", e, act)
