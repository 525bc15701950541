"""YOLOv6 3.0 backbone blocks: RepBlock, BottleRep, BepC3 (CSPStackRep), two stages, two SPPF contexts.

YOLOv6 builds every 3×3 from one "basic block": RepVGG with ReLU in N/S/M, a plain Conv-BN-SiLU in L
(its "conv_silu" training mode). Here that choice is the `block` field ("repvgg" | "qarepvgg" | "conv"),
so a search space can pick it per stage. The 1×1 convs of BepC3 and the SPPF contexts take the stage's
activation, as in YOLOv6 (ReLU next to RepVGG, SiLU next to Conv-BN-SiLU).
"""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.blocks.repvgg import make_block
from nasearch.nn.blocks.sppf import SPPF
from nasearch.nn.common import ConvBNAct
from nasearch.nn.fields import InnerBlock
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.yolov6 import V6CSPBepStageParams, V6CSPSPPFParams, V6RepStageParams, V6SimSPPFParams


class RepBlock(nn.Sequential):
    """`n` basic blocks in series; the first maps c_in → c_out, the rest keep c_out (identity branches on)."""

    def __init__(self, c_in: int, c_out: int, n: int, kind: InnerBlock, ctx: BuildContext, act: str | None) -> None:
        super().__init__(*(make_block(kind, c_in if i == 0 else c_out, c_out, 1, ctx, act) for i in range(n)))


class BottleRep(nn.Module):
    """Two basic blocks plus the input times a learnable scalar alpha (the residual only if shapes agree)."""

    def __init__(self, c_in: int, c_out: int, kind: InnerBlock, ctx: BuildContext, act: str | None) -> None:
        super().__init__()
        self.conv1 = make_block(kind, c_in, c_out, 1, ctx, act)
        self.conv2 = make_block(kind, c_out, c_out, 1, ctx, act)
        self.alpha = nn.Parameter(torch.ones(1)) if c_in == c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + self.alpha * x if self.alpha is not None else y


class BepC3(nn.Module):
    """CSPStackRep: 1×1 to hidden → `units` BottleReps; 1×1 to hidden beside; concat; 1×1 to c_out."""

    def __init__(
        self, c_in: int, c_out: int, units: int, e: float, kind: InnerBlock, ctx: BuildContext, act: str | None
    ) -> None:
        super().__init__()
        hidden = int(c_out * e)
        self.cv1 = ConvBNAct(c_in, hidden, 1, 1, ctx, act)
        self.cv2 = ConvBNAct(c_in, hidden, 1, 1, ctx, act)
        self.m = nn.Sequential(*(BottleRep(hidden, hidden, kind, ctx, act) for _ in range(units)))
        self.cv3 = ConvBNAct(2 * hidden, c_out, 1, 1, ctx, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


def make_stage_body(
    csp: bool, c_in: int, c_out: int, blocks: int, e: float, kind: InnerBlock, ctx: BuildContext, act: str | None
) -> nn.Module:
    """RepBlock of `blocks` basic blocks, or (csp) BepC3 of `blocks` BottleReps — shared by stages and neck."""
    if csp:
        return BepC3(c_in, c_out, blocks, e, kind, ctx, act)
    return RepBlock(c_in, c_out, blocks, kind, ctx, act)


@register("v6_rep_stage")
def build_rep_stage(p: V6RepStageParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLOv6 EfficientRep stage (N/S): stride-2 RepVGG downsample, then RepBlock."""
    stage = nn.Sequential(
        make_block(p.block, c_in, p.out, 2, ctx, p.act, identity=False),
        RepBlock(p.out, p.out, p.blocks, p.block, ctx, p.act),
    )
    return stage, p.out


@register("v6_cspbep_stage")
def build_cspbep_stage(p: V6CSPBepStageParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLOv6 CSPBep stage (M/L): stride-2 downsample, then BepC3 (CSPStackRep) with hidden = int(out·e)."""
    stage = nn.Sequential(
        make_block(p.block, c_in, p.out, 2, ctx, p.act, identity=False),
        BepC3(p.out, p.out, p.blocks, p.e, p.block, ctx, p.act),
    )
    return stage, p.out


class CSPSPPF(nn.Module):
    """CSP around SPPF: branch A = 1×1, 3×3, 1×1, three chained pools, concat, 1×1, 3×3; branch B = 1×1;
    concat both, 1×1 to c_out. Hidden width int(c_out·e)."""

    def __init__(self, c_in: int, c_out: int, k: int, e: float, ctx: BuildContext, act: str | None) -> None:
        super().__init__()
        h = int(c_out * e)
        self.cv1 = ConvBNAct(c_in, h, 1, 1, ctx, act)
        self.cv2 = ConvBNAct(c_in, h, 1, 1, ctx, act)
        self.cv3 = ConvBNAct(h, h, 3, 1, ctx, act)
        self.cv4 = ConvBNAct(h, h, 1, 1, ctx, act)
        self.pool = nn.MaxPool2d(k, 1, k // 2)
        self.cv5 = ConvBNAct(4 * h, h, 1, 1, ctx, act)
        self.cv6 = ConvBNAct(h, h, 3, 1, ctx, act)
        self.cv7 = ConvBNAct(2 * h, c_out, 1, 1, ctx, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv4(self.cv3(self.cv1(x)))]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        pooled = self.cv6(self.cv5(torch.cat(y, 1)))
        return self.cv7(torch.cat((self.cv2(x), pooled), 1))


@register("v6_simsppf")
def build_simsppf(p: V6SimSPPFParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLOv6 SimSPPF: 1×1 to c_in/2, three chained k×k max-pools, concat the four, 1×1 to out."""
    return SPPF(c_in, p.out, p.k, ctx, max(c_in // 2, 1), p.act), p.out


@register("v6_cspsppf")
def build_cspsppf(p: V6CSPSPPFParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLOv6 3.0 (Sim)CSPSPPF: SPPF inside a CSP split, hidden width int(out·e)."""
    return CSPSPPF(c_in, p.out, p.k, p.e, ctx, p.act), p.out
