"""YOLO11's C2PSA (CSP around position-sensitive attention blocks) and the `sppf_c2psa` context block.

The attention is multi-head self-attention over the H·W positions of a map, with 1×1 Conv-BN projections
and a 3×3 depthwise Conv-BN on the values added as a positional term; every conv is a Conv-BN that folds.
"""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.blocks.sppf import SPPF
from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.c2psa import SPPFC2PSAParams

HEAD_WIDTH = 64  # channels per attention head (YOLO11: max(c // 64, 1) heads)


def default_heads(c: int) -> int:
    """YOLO11's head count max(c // 64, 1), lowered to the nearest divisor of c so every width builds."""
    heads = max(c // HEAD_WIDTH, 1)
    while c % heads:
        heads -= 1
    return heads


class Attention(nn.Module):
    """Self-attention over positions; keys are `attn_ratio` of a head's width; + depthwise 3×3 of the values."""

    def __init__(self, dim: int, heads: int, ctx: BuildContext, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = ConvBNAct(dim, dim + 2 * self.key_dim * heads, 1, 1, ctx, "identity")
        self.proj = ConvBNAct(dim, dim, 1, 1, ctx, "identity")
        self.pe = ConvBNAct(dim, dim, 3, 1, ctx, "identity", groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        per_head = self.qkv(x).view(b, self.heads, 2 * self.key_dim + self.head_dim, h * w)
        q, k, v = per_head.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        weights = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)  # [b, heads, hw, hw]
        values = v.reshape(b, c, h, w)
        out = (v @ weights.transpose(-2, -1)).view(b, c, h, w) + self.pe(values)
        return self.proj(out)


class PSABlock(nn.Module):
    """x + attention(x), then + a 1×1 feed-forward (2× expansion, linear output)."""

    def __init__(self, c: int, heads: int, ctx: BuildContext, act: str | None = None) -> None:
        super().__init__()
        self.attn = Attention(c, heads, ctx)
        self.ffn = nn.Sequential(ConvBNAct(c, 2 * c, 1, 1, ctx, act), ConvBNAct(2 * c, c, 1, 1, ctx, "identity"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    """1×1 to 2·c (c = width·e), n PSA blocks on one half, concat, 1×1 back to width."""

    def __init__(
        self, width: int, n: int, ctx: BuildContext, e: float = 0.5, heads: int | None = None, act: str | None = None
    ) -> None:
        super().__init__()
        self.c = int(width * e)
        self.cv1 = ConvBNAct(width, 2 * self.c, 1, 1, ctx, act)
        self.cv2 = ConvBNAct(2 * self.c, width, 1, 1, ctx, act)
        heads = heads or default_heads(self.c)
        self.m = nn.Sequential(*(PSABlock(self.c, heads, ctx, act) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


@register("sppf_c2psa")
def build(p: SPPFC2PSAParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """YOLO11's P5 context: SPPF, then C2PSA (attention heads: one per 64 channels of its inner width)."""
    block = nn.Sequential(
        SPPF(c_in, p.out, p.k, ctx, p.hidden, p.act), C2PSA(p.out, p.psa_blocks, ctx, p.psa_e, act=p.act)
    )
    return block, p.out
