"""YOLO-NAS blocks (Deci super-gradients' searched detector): stage, SPP, PAN neck with C2 skips, DFL head.

Each bottleneck's inner block is a parameter ("qarepvgg" | "repvgg" | "conv") so a search space can trade
the quantization-friendly QARepVGG against plain RepVGG or Conv-BN-Act per stage. Defaults reproduce the
published models: QARepVGG in the backbone and up-stages, Conv3×3 in the down-stages.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasearch.nn.blocks.repvgg import make_block
from nasearch.nn.common import ConvBNAct
from nasearch.nn.fields import InnerBlock
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.yolonas import (
    DownLevel,
    UpLevel,
    YoloNASHeadParams,
    YoloNASPanParams,
    YoloNASSPPParams,
    YoloNASStageParams,
)


class YoloNASBottleneck(nn.Module):
    """Two blocks in series plus the input scaled by a learnable alpha (when shapes agree)."""

    def __init__(
        self, c_in: int, c_out: int, kind: InnerBlock, ctx: BuildContext, act: str | None, shortcut: bool = True
    ) -> None:
        super().__init__()
        self.cv1 = make_block(kind, c_in, c_out, 1, ctx, act)
        self.cv2 = make_block(kind, c_out, c_out, 1, ctx, act)
        self.add = shortcut and c_in == c_out
        self.alpha = nn.Parameter(torch.ones(1)) if self.add else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return self.alpha * x + y if self.alpha is not None else y


class YoloNASCSP(nn.Module):
    """1×1 conv1 → n bottlenecks; 1×1 conv2 beside; concat (every intermediate if asked); 1×1 conv3."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        blocks: int,
        hidden: int,
        kind: InnerBlock,
        ctx: BuildContext,
        act: str | None,
        concat_intermediates: bool = False,
    ) -> None:
        super().__init__()
        self.concat_intermediates = concat_intermediates
        self.conv1 = ConvBNAct(c_in, hidden, 1, 1, ctx, act)
        self.conv2 = ConvBNAct(c_in, hidden, 1, 1, ctx, act)
        self.bottlenecks = nn.ModuleList(YoloNASBottleneck(hidden, hidden, kind, ctx, act) for _ in range(blocks))
        parts = 2 + (blocks if concat_intermediates else 0)
        self.conv3 = ConvBNAct(hidden * parts, c_out, 1, 1, ctx, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.conv1(x)]
        for block in self.bottlenecks:
            y.append(block(y[-1]))
        kept = y if self.concat_intermediates else y[-1:]
        return self.conv3(torch.cat([*kept, self.conv2(x)], 1))


@register("yolonas_stage")
def build_stage(p: YoloNASStageParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLO-NAS backbone stage: downsample block (same kind as the inner blocks), then a CSP layer."""
    stage = nn.Sequential(
        make_block(p.block, c_in, p.out, 2, ctx, p.act, identity=False),
        YoloNASCSP(p.out, p.out, p.blocks, p.hidden, p.block, ctx, p.act, p.concat_intermediates),
    )
    return stage, p.out


class SPP(nn.Module):
    """1×1 to hidden, parallel max-pools of several sizes, concat with the input, 1×1 to out."""

    def __init__(
        self, c_in: int, c_out: int, hidden: int, kernels: list[int], ctx: BuildContext, act: str | None
    ) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c_in, hidden, 1, 1, ctx, act)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernels)
        self.cv2 = ConvBNAct(hidden * (len(kernels) + 1), c_out, 1, 1, ctx, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x, *(pool(x) for pool in self.pools)], 1))


@register("yolonas_spp")
def build_spp(p: YoloNASSPPParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """Spatial pyramid pooling with parallel k×k max-pools (YOLO-NAS: 5, 9, 13)."""
    return SPP(c_in, p.out, p.hidden or max(c_in // 2, 1), list(p.kernels), ctx, p.act), p.out


class YoloNASUpStage(nn.Module):
    """Top-down step with two skips: the deep input is reduced (1×1, kept for the bottom-up path) and
    upsampled by a 2×2 transposed conv; the same-resolution skip is reduced by 1×1; the higher-resolution
    skip is reduced by 1×1 and downsampled by a 3×3 stride-2 conv; concat, 1×1 reduce, CSP layer."""

    def __init__(
        self, c_deep: int, c_skip: int, c_skip_hi: int, p: UpLevel, ctx: BuildContext, act: str | None
    ) -> None:
        super().__init__()
        out = p.out
        self.conv = ConvBNAct(c_deep, out, 1, 1, ctx, act)
        self.upsample = nn.ConvTranspose2d(out, out, 2, 2)
        self.reduce_skip = ConvBNAct(c_skip, out, 1, 1, ctx, act)
        self.reduce_skip_hi = ConvBNAct(c_skip_hi, out, 1, 1, ctx, act)
        self.downsample = ConvBNAct(out, out, 3, 2, ctx, act)
        self.reduce_after_concat = ConvBNAct(3 * out, out, 1, 1, ctx, act)
        self.blocks = YoloNASCSP(out, out, p.blocks, p.hidden, p.block, ctx, act, p.concat_intermediates)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, skip_hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inter = self.conv(x)
        hi = self.downsample(self.reduce_skip_hi(skip_hi))
        y = torch.cat([self.upsample(inter), self.reduce_skip(skip), hi], 1)
        return inter, self.blocks(self.reduce_after_concat(y))


class YoloNASDownStage(nn.Module):
    """Bottom-up step: 3×3 stride-2 conv to out/2, concat the lateral input, CSP layer."""

    def __init__(self, c_in: int, c_lateral: int, p: DownLevel, ctx: BuildContext, act: str | None) -> None:
        super().__init__()
        half = p.out // 2
        self.conv = ConvBNAct(c_in, half, 3, 2, ctx, act)
        self.blocks = YoloNASCSP(half + c_lateral, p.out, p.blocks, p.hidden, p.block, ctx, act, p.concat_intermediates)

    def forward(self, x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        return self.blocks(torch.cat([self.conv(x), lateral], 1))


class YoloNASPan(nn.Module):
    """up1([C5, C4, C3]) → up2([·, C3, C2]) = P3 → down1(P3, up2's reduced input) = P4
    → down2(P4, up1's reduced input) = P5."""

    def __init__(self, p: YoloNASPanParams, ctx: BuildContext, levels: list[int]) -> None:
        super().__init__()
        c2, c3, c4, c5 = levels
        self.up1 = YoloNASUpStage(c5, c4, c3, p.up1, ctx, p.act)
        self.up2 = YoloNASUpStage(p.up1.out, c3, c2, p.up2, ctx, p.act)
        self.down1 = YoloNASDownStage(p.up2.out, p.up2.out, p.down1, ctx, p.act)
        self.down2 = YoloNASDownStage(p.down1.out, p.up1.out, p.down2, ctx, p.act)
        self.out_channels = [p.up2.out, p.down1.out, p.down2.out]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        c2, c3, c4, c5 = feats
        inter1, x = self.up1(c5, c4, c3)
        inter2, p3 = self.up2(x, c3, c2)
        p4 = self.down1(p3, inter2)
        p5 = self.down2(p4, inter1)
        return [p3, p4, p5]


@register("yolonas_pan")
def build_pan(p: YoloNASPanParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, list[int]]:
    """YOLO-NAS PAN neck: two up-stages that also take the next-higher-resolution level, two down-stages."""
    if len(levels) != 4:
        raise ValueError(f"yolonas_pan needs the 4 backbone levels (strides 4..32), got {len(levels)}")
    neck = YoloNASPan(p, ctx, list(levels))
    return neck, neck.out_channels


HEAD_BASE_WIDTHS = (128, 256, 512)


def head_widths(width_mult: float) -> list[int]:
    """YOLO-NAS head widths: 128/256/512 × width_mult, rounded up to a multiple of 8."""
    return [max(8, math.ceil(int(c * width_mult) / 8) * 8) for c in HEAD_BASE_WIDTHS]


class YoloNASHeadLevel(nn.Module):
    """1×1 stem, then one 3×3 Conv-BN-Act per branch and a 1×1 prediction (DFL box bins, class logits)."""

    def __init__(self, c_in: int, width: int, bins: int, ctx: BuildContext, act: str | None) -> None:
        super().__init__()
        self.stem = ConvBNAct(c_in, width, 1, 1, ctx, act)
        self.reg_conv = ConvBNAct(width, width, 3, 1, ctx, act)
        self.cls_conv = ConvBNAct(width, width, 3, 1, ctx, act)
        self.reg_pred = nn.Conv2d(width, 4 * bins, 1)
        self.cls_pred = nn.Conv2d(width, ctx.nc, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        return self.reg_pred(self.reg_conv(x)), self.cls_pred(self.cls_conv(x))


class YoloNASHead(nn.Module):
    PRIOR_PROB = 0.01  # every class starts at 1% probability, so the focal-style loss starts calm

    def __init__(self, levels: list[int], widths: list[int], ctx: BuildContext, act: str | None) -> None:
        super().__init__()
        self.bins = ctx.reg_max + 1  # DFL over distances 0..reg_max inclusive
        self.nc = ctx.nc
        self.levels = nn.ModuleList(
            YoloNASHeadLevel(c, w, self.bins, ctx, act) for c, w in zip(levels, widths, strict=True)
        )
        for level in self.levels:
            nn.init.constant_(level.cls_pred.bias, -math.log((1 - self.PRIOR_PROB) / self.PRIOR_PROB))

    def forward(self, feats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [level(x) for level, x in zip(self.levels, feats, strict=True)]


@register("yolonas_head")
def build_head(p: YoloNASHeadParams, ctx: BuildContext, levels: list[int]) -> tuple[nn.Module, None]:
    """YOLO-NAS decoupled DFL head; per-level widths 128/256/512 × width_mult (multiples of 8)."""
    return YoloNASHead(list(levels), head_widths(p.width_mult), ctx, p.act), None
