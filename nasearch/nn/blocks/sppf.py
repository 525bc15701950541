"""`sppf`: YOLOv8's fast spatial pyramid pooling (three chained max-pools)."""

from __future__ import annotations

import torch
from torch import nn

from nasearch.nn.common import ConvBNAct
from nasearch.nn.registry import BuildContext, register
from nasearch.nn.specs.sppf import SPPFParams


class SPPF(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, k: int, ctx: BuildContext, hidden: int | None = None, act: str | None = None
    ) -> None:
        super().__init__()
        hidden = hidden or c_in // 2
        self.cv1 = ConvBNAct(c_in, hidden, 1, 1, ctx, act)
        self.cv2 = ConvBNAct(hidden * 4, c_out, 1, 1, ctx, act)
        self.pool = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))


@register("sppf")
def build(p: SPPFParams, ctx: BuildContext, c_in: int) -> tuple[nn.Module, int]:
    """1×1 to hidden (default c_in/2), three chained k×k max-pools, concat the four, 1×1 to out."""
    return SPPF(c_in, p.out, p.k, ctx, p.hidden, p.act), p.out
