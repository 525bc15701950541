"""Shared building blocks: activations, Conv-BN-Act, and the BN-folding arithmetic used by every fuse."""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.fields import ACTIVATION_CLASSES
from nasearch.nn.registry import BuildContext

ACTIVATIONS: dict[str, type[nn.Module]] = {name: getattr(nn, cls) for name, cls in ACTIVATION_CLASSES.items()}


def make_act(name: str) -> nn.Module:
    if name in ("relu", "silu", "hardswish"):
        return ACTIVATIONS[name](inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.1, inplace=True)
    return ACTIVATIONS[name]()


def make_bn(c: int, ctx: BuildContext) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=ctx.bn_eps, momentum=ctx.bn_momentum)


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (weight, bias) of a conv followed by `bn` (eval statistics) as one conv."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    b0 = bias if bias is not None else torch.zeros_like(bn.running_mean)
    b = beta + (b0 - bn.running_mean) * scale
    return w.detach(), b.detach()


def identity_kernel(channels: int, groups: int = 1, k: int = 3, device: torch.device | None = None) -> torch.Tensor:
    """The k×k kernel of the identity map (one 1 per output channel, at the centre of its own input)."""
    per_group = channels // groups
    w = torch.zeros(channels, per_group, k, k, device=device)
    idx = torch.arange(channels, device=device)
    w[idx, idx % per_group, k // 2, k // 2] = 1.0
    return w


def bn_as_conv(bn: nn.BatchNorm2d, channels: int, groups: int = 1, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """An identity k×k kernel followed by `bn`, folded: the identity branch of a RepVGG block."""
    return fold_bn(identity_kernel(channels, groups, k, bn.running_mean.device), None, bn)


def pad_1x1_to_3x3(w: torch.Tensor) -> torch.Tensor:
    return nn.functional.pad(w, [1, 1, 1, 1])


def fused_conv(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A Conv2d with `conv`'s geometry carrying the given weight and bias."""
    new = torch.nn.utils.skip_init(  # no random init: the weights are overwritten at once
        nn.Conv2d,
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        device=weight.device,
    )
    new.weight.data.copy_(weight)
    new.bias.data.copy_(bias)  # type: ignore[union-attr]
    return new


class ConvBNAct(nn.Module):
    """Conv2d (no bias) + BatchNorm + activation; the BN folds into the conv on `fuse()`."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int = 1,
        s: int = 1,
        ctx: BuildContext | None = None,
        act: str | None = None,
        groups: int = 1,
        p: int | None = None,
    ) -> None:
        super().__init__()
        ctx = ctx or BuildContext()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2 if p is None else p, groups=groups, bias=False)
        self.bn: nn.Module = make_bn(c_out, ctx)
        self.act = make_act(act or ctx.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            w, b = fold_bn(self.conv.weight, self.conv.bias, self.bn)
            self.conv = fused_conv(self.conv, w, b)
            self.bn = nn.Identity()


@torch.no_grad()
def fuse_model(model: nn.Module) -> nn.Module:
    """Re-parameterize every block that can be (children before parents), in place; returns the model."""
    for module in reversed(list(model.modules())):
        fuse = getattr(module, "fuse", None)
        if callable(fuse):
            fuse()
    return model
