"""The compiled detector: stem → stages → context → neck → head, plus export-friendly decoding."""

from __future__ import annotations

import torch
from torch import nn

STRIDES: tuple[int, int, int] = (8, 16, 32)


def make_anchors(
    feats: list[torch.Tensor], strides: tuple[int, ...] = STRIDES, offset: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres in pixels [N, 2] and their strides [N, 1] for a list of feature maps."""
    points, stride_col = [], []
    for f, s in zip(feats, strides, strict=True):
        h, w = f.shape[-2:]
        sy = (torch.arange(h, device=f.device, dtype=torch.float32) + offset) * s
        sx = (torch.arange(w, device=f.device, dtype=torch.float32) + offset) * s
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((xx, yy), -1).reshape(-1, 2))
        stride_col.append(torch.full((h * w, 1), float(s), device=f.device))
    return torch.cat(points), torch.cat(stride_col)


def dfl_distances(box_logits: torch.Tensor, bins: int) -> torch.Tensor:
    """[B, 4*bins, N] logits → [B, 4, N] distances in stride units (expected value of each bin dist)."""
    b, _, n = box_logits.shape
    if bins == 1:
        return box_logits
    prob = box_logits.view(b, 4, bins, n).softmax(2)
    proj = torch.arange(bins, device=box_logits.device, dtype=prob.dtype).view(1, 1, bins, 1)
    return (prob * proj).sum(2)


def flatten_levels(raw: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level (box, cls) maps → box logits [B, 4*bins, N] and class logits [B, nc, N]."""
    box = torch.cat([b.flatten(2) for b, _ in raw], 2)
    cls = torch.cat([c.flatten(2) for _, c in raw], 2)
    return box, cls


def decode(
    raw: list[tuple[torch.Tensor, torch.Tensor]], bins: int, strides: tuple[int, ...] = STRIDES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw head outputs → (boxes [B, N, 4] xyxy in input pixels, scores [B, N, nc] in 0..1)."""
    anchors, stride = make_anchors([b for b, _ in raw], strides)
    box, cls = flatten_levels(raw)
    dist = dfl_distances(box, bins).transpose(1, 2) * stride  # [B, N, 4]
    lt, rb = dist[..., :2], dist[..., 2:]
    boxes = torch.cat((anchors - lt, anchors + rb), -1)
    return boxes, cls.sigmoid().transpose(1, 2)


class Detector(nn.Module):
    """A one-stage anchor-free detector. Training mode returns raw per-level outputs; eval mode decodes."""

    def __init__(
        self,
        stem: nn.Module,
        stages: nn.ModuleList,
        context: nn.Module,
        neck: nn.Module,
        head: nn.Module,
        nc: int,
        name: str = "detector",
    ) -> None:
        super().__init__()
        self.stem, self.stages, self.context, self.neck, self.head = stem, stages, context, neck, head
        self.nc = nc
        self.bins: int = int(head.bins)  # type: ignore[arg-type]
        self.strides = STRIDES
        self.name = name
        self.export_raw = False

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        feats[-1] = self.context(feats[-1])
        return feats

    def forward_raw(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self.head(self.neck(self.features(x)))

    def forward(self, x: torch.Tensor):
        raw = self.forward_raw(x)
        if self.training or self.export_raw:
            return raw
        return decode(raw, self.bins, self.strides)

    def fuse(self) -> None:  # the children were fused by fuse_model already
        pass
