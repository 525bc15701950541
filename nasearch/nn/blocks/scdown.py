"""YOLOv10's SCDown (pointwise conv, then a stride-2 depthwise conv) and `scdown_stage`."""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.blocks.c2fcib import make_c2f
from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.scdown import SCDownStageParams


class SCDown(nn.Module):
    """1×1 Conv-BN-Act to c_out, then a k×k stride-s depthwise Conv-BN (no activation): a cheaper downsampling
    than one dense strided 3×3."""

    def __init__(
        self, c_in: int, c_out: int, ctx: BuildContext, k: int = 3, s: int = 2, act: str | None = None
    ) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c_in, c_out, 1, 1, ctx, act)
        self.cv2 = ConvBNAct(c_out, c_out, k, s, ctx, "identity", groups=c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(self.cv1(x))


@register("scdown_stage")
def build(p: SCDownStageParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLOv10 P4/P5 stage: SCDown to `out`, then a C2f of `blocks` inner blocks of kind `block`."""
    stage = nn.Sequential(
        SCDown(c_in, p.out, ctx, act=p.act), make_c2f(p.block, p.out, p.out, p.blocks, p.shortcut, ctx, p.e, p.act)
    )
    return stage, p.out
