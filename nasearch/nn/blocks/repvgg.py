"""RepVGG and QARepVGG blocks (three branches in training, one Conv3×3 after `fuse()`) and `repvgg_stem`.

RepVGG sums a 3×3 conv+BN, a 1×1 conv+BN and an identity BN. Its fused weights carry outliers that
break INT8 post-training quantization, so QARepVGG (Chu et al. 2022) drops the BN on the 1×1 branch
(which keeps a bias) and on the identity, and normalizes once after the sum (post-BN). Either way the
deploy form is a single Conv3×3 with bias followed by the activation.
"""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.common import (
    ConvBNAct,
    fold_bn,
    fused_conv,
    identity_kernel,
    make_act,
    make_bn,
    pad_1x1_to_3x3,
)
from nasearch.nn.fields import RepVariant
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.repvgg import RepVGGStemParams


class _ReparamBlock(nn.Module):
    """Shared deploy path: after `fuse()` the block is `act(reparam(x))`."""

    def __init__(
        self, c_in: int, c_out: int, stride: int, identity: bool, ctx: BuildContext, act: str | None, alpha_1x1: bool
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.has_identity = identity and c_in == c_out and stride == 1
        self.conv3x3 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn3x3 = make_bn(c_out, ctx)
        # A learnable weight on the 1×1 branch (PP-YOLOE+ style); off in every published YOLO-NAS block.
        self.alpha = nn.Parameter(torch.ones(1)) if alpha_1x1 else None
        self.act = make_act(act or ctx.act)
        self.reparam: nn.Conv2d | None = None

    @property
    def fused(self) -> bool:
        return self.reparam is not None

    def _alpha(self) -> torch.Tensor | float:
        return self.alpha if self.alpha is not None else 1.0

    def _install(self, weight: torch.Tensor, bias: torch.Tensor, drop: tuple[str, ...]) -> None:
        """Replace the branches by one conv carrying (weight, bias)."""
        self.reparam = fused_conv(self.conv3x3, weight, bias)
        for name in ("conv3x3", "bn3x3", "alpha", *drop):
            delattr(self, name)
            setattr(self, name, None)


class RepVGGBlock(_ReparamBlock):
    """act(BN(conv3×3 x) + α·BN(conv1×1 x) + BN(x)); the identity BN only when shapes allow."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        ctx: BuildContext | None = None,
        act: str | None = None,
        identity: bool = True,
        alpha_1x1: bool = False,
    ) -> None:
        ctx = ctx or BuildContext()
        super().__init__(c_in, c_out, stride, identity, ctx, act, alpha_1x1)
        self.conv1x1: nn.Conv2d | None = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)
        self.bn1x1: nn.Module | None = make_bn(c_out, ctx)
        self.bn_id: nn.Module | None = make_bn(c_in, ctx) if self.has_identity else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.act(self.reparam(x))
        y = self.bn3x3(self.conv3x3(x)) + self._alpha() * self.bn1x1(self.conv1x1(x))
        if self.bn_id is not None:
            y = y + self.bn_id(x)
        return self.act(y)

    @torch.no_grad()
    def fuse(self) -> None:
        if self.fused:
            return
        w, b = fold_bn(self.conv3x3.weight, None, self.bn3x3)
        w1, b1 = fold_bn(self.conv1x1.weight, None, self.bn1x1)
        alpha = self._alpha()
        w, b = w + alpha * pad_1x1_to_3x3(w1), b + alpha * b1
        if self.bn_id is not None:
            wi, bi = fold_bn(identity_kernel(self.c_in, device=w.device), None, self.bn_id)
            w, b = w + wi, b + bi
        self._install(w, b, ("conv1x1", "bn1x1", "bn_id"))


class QARepVGGBlock(_ReparamBlock):
    """act(postBN(BN(conv3×3 x) + α·(conv1×1 x + bias) + x)): the quantization-friendly RepVGG."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        ctx: BuildContext | None = None,
        act: str | None = None,
        identity: bool = True,
        alpha_1x1: bool = False,
        bias_1x1: bool = True,
    ) -> None:
        ctx = ctx or BuildContext()
        super().__init__(c_in, c_out, stride, identity, ctx, act, alpha_1x1)
        self.conv1x1: nn.Conv2d | None = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=bias_1x1)
        self.post_bn: nn.Module | None = make_bn(c_out, ctx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.act(self.reparam(x))
        y = self.bn3x3(self.conv3x3(x)) + self._alpha() * self.conv1x1(x)
        if self.has_identity:
            y = y + x
        return self.act(self.post_bn(y))

    @torch.no_grad()
    def fuse(self) -> None:
        if self.fused:
            return
        w, b = fold_bn(self.conv3x3.weight, None, self.bn3x3)
        alpha = self._alpha()
        w = w + alpha * pad_1x1_to_3x3(self.conv1x1.weight)
        if self.conv1x1.bias is not None:
            b = b + alpha * self.conv1x1.bias
        if self.has_identity:
            w = w + identity_kernel(self.c_in, device=w.device)
        w, b = fold_bn(w, b, self.post_bn)
        self._install(w, b, ("conv1x1", "post_bn"))


def make_rep_block(
    variant: RepVariant,
    c_in: int,
    c_out: int,
    stride: int,
    ctx: BuildContext,
    act: str | None = None,
    identity: bool = True,
) -> _ReparamBlock:
    """A RepVGG-family block by name (the identity branch appears only if c_in == c_out and stride 1)."""
    cls = QARepVGGBlock if variant == "qarepvgg" else RepVGGBlock
    return cls(c_in, c_out, stride, ctx, act, identity=identity)


@register("repvgg_stem")
def build(p: RepVGGStemParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """One stride-2 (QA)RepVGG block from the image (YOLO-NAS's stem)."""
    return make_rep_block(p.variant, c_in, p.out, 2, ctx, p.act, identity=False), p.out


def make_block(
    kind: str, c_in: int, c_out: int, stride: int, ctx: BuildContext, act: str | None, identity: bool = True
) -> nn.Module:
    """A 3×3 block of the given kind ("qarepvgg" | "repvgg" | "conv"); `identity` allows RepVGG's identity
    branch when shapes agree."""
    if kind == "conv":
        return ConvBNAct(c_in, c_out, 3, stride, ctx, act)
    return make_rep_block(kind, c_in, c_out, stride, ctx, act, identity=identity)
