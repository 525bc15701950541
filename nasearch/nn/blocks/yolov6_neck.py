"""`v6_repbifpan`: YOLOv6 3.0's Rep-BiFPAN neck, with BiC (bidirectional concatenation) fusion.

Top-down, each step fuses three resolutions (BiC): the reduced deeper map upsampled by a 2×2 transposed
conv, the same-resolution backbone map, and the next higher-resolution backbone map downsampled by a
strided 3×3 — so the stride-4 level feeds P3. Bottom-up it is a plain PAN. The fusion convs (reduce,
BiC, downsample) use `fuse_act` (ReLU in every YOLOv6 model, L included); the stage bodies use `act`.
"""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.blocks.yolov6 import make_stage_body
from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.yolov6_neck import NeckLevel, V6RepBiFPANParams


class BiC(nn.Module):
    """Upsample(deep) ‖ 1×1(same) ‖ 3×3-stride-2(1×1(higher-res)) → 1×1 to `out`; `deep` has `out` channels."""

    def __init__(self, c_same: int, c_hi: int, out: int, ctx: BuildContext, act: str | None) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(out, out, 2, 2, bias=True)
        self.cv1 = ConvBNAct(c_same, out, 1, 1, ctx, act)
        self.cv2 = ConvBNAct(c_hi, out, 1, 1, ctx, act)
        self.downsample = ConvBNAct(out, out, 3, 2, ctx, act)
        self.cv3 = ConvBNAct(3 * out, out, 1, 1, ctx, act)

    def forward(self, deep: torch.Tensor, same: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        parts = (self.upsample(deep), self.cv1(same), self.downsample(self.cv2(hi)))
        return self.cv3(torch.cat(parts, 1))


class V6RepBiFPAN(nn.Module):
    def __init__(self, p: V6RepBiFPANParams, ctx: BuildContext, levels: list[int]) -> None:
        super().__init__()
        c2, c3, c4, c5 = levels[-4:]
        w4, w3 = p.up1.out, p.up2.out

        def body(c_in: int, lvl: NeckLevel) -> nn.Module:
            return make_stage_body(p.csp, c_in, lvl.out, lvl.blocks, p.e, p.block, ctx, p.act)

        self.reduce0 = ConvBNAct(c5, w4, 1, 1, ctx, p.fuse_act)
        self.bic0 = BiC(c4, c3, w4, ctx, p.fuse_act)
        self.p4 = body(w4, p.up1)
        self.reduce1 = ConvBNAct(p.up1.out, w3, 1, 1, ctx, p.fuse_act)
        self.bic1 = BiC(c3, c2, w3, ctx, p.fuse_act)
        self.p3 = body(w3, p.up2)
        self.down0 = ConvBNAct(p.up2.out, p.up2.out, 3, 2, ctx, p.fuse_act)
        self.n4 = body(p.up2.out + w3, p.down1)
        self.down1 = ConvBNAct(p.down1.out, p.down1.out, 3, 2, ctx, p.fuse_act)
        self.n5 = body(p.down1.out + w4, p.down2)
        self.out_channels = [p.up2.out, p.down1.out, p.down2.out]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x2, x3, x4, x5 = feats[-4:]
        r5 = self.reduce0(x5)
        t4 = self.p4(self.bic0(r5, x4, x3))
        r4 = self.reduce1(t4)
        p3 = self.p3(self.bic1(r4, x3, x2))
        p4 = self.n4(torch.cat((self.down0(p3), r4), 1))
        p5 = self.n5(torch.cat((self.down1(p4), r5), 1))
        return [p3, p4, p5]


@register("v6_repbifpan")
def build(p: V6RepBiFPANParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, list[int]]:
    """YOLOv6 3.0 Rep-BiFPAN (RepBlock bodies) or CSP Rep-BiFPAN (BepC3 bodies, `csp: true`)."""
    neck = V6RepBiFPAN(p, ctx, levels)
    return neck, neck.out_channels
