"""From decoded detector output to final detections: confidence filter, class-aware NMS, letterbox undo.

Defaults follow YOLO validation practice (confidence 0.001, IoU 0.7, multi-label, at most 300 per image):
a low threshold and many detections are what COCO mAP rewards, since it integrates over all recalls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import batched_nms

from nasearch.data.augment import LetterboxMeta, unletterbox_boxes


@dataclass(frozen=True)
class NMSConfig:
    conf: float = 0.001  # minimum class score kept
    iou: float = 0.7  # boxes of one class overlapping more than this with a better one are dropped
    pre_nms_topk: int = 30000  # best candidates kept before NMS (bounds NMS time on untrained models)
    max_det: int = 300  # detections kept per image after NMS
    multi_label: bool = True  # an anchor may yield one detection per class above `conf`

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf < 1.0 or not 0.0 < self.iou <= 1.0:
            raise ValueError(f"conf must be in [0, 1) and iou in (0, 1], got {self.conf}, {self.iou}")
        if self.pre_nms_topk < 1 or self.max_det < 1:
            raise ValueError("pre_nms_topk and max_det must be positive")


@dataclass(frozen=True)
class Detections:
    """One image's detections, best first."""

    boxes: torch.Tensor  # [K, 4] xyxy pixels
    scores: torch.Tensor  # [K]
    classes: torch.Tensor  # [K] int64 class index

    def __len__(self) -> int:
        return len(self.scores)

    def rescaled(self, meta: LetterboxMeta, width: int, height: int) -> Detections:
        """Letterboxed-input coordinates back to the original image (clipped to it)."""
        boxes = unletterbox_boxes(self.boxes.detach().cpu().numpy(), meta, width, height)
        moved = torch.from_numpy(np.ascontiguousarray(boxes))
        return Detections(moved, self.scores.cpu(), self.classes.cpu())


def select_image(boxes: torch.Tensor, scores: torch.Tensor, cfg: NMSConfig) -> Detections:
    """Detections of one image from boxes [N, 4] and class scores [N, nc]."""
    if cfg.multi_label:
        anchor, cls = (scores > cfg.conf).nonzero(as_tuple=True)
        score = scores[anchor, cls]
    else:
        score, cls = scores.max(1)
        anchor = (score > cfg.conf).nonzero(as_tuple=True)[0]
        score, cls = score[anchor], cls[anchor]
    if len(score) > cfg.pre_nms_topk:
        top = score.topk(cfg.pre_nms_topk).indices
        anchor, cls, score = anchor[top], cls[top], score[top]
    candidate_boxes = boxes[anchor].float()
    keep = batched_nms(candidate_boxes, score.float(), cls, cfg.iou)[: cfg.max_det]  # sorted by score
    return Detections(candidate_boxes[keep], score[keep].float(), cls[keep].long())


@torch.no_grad()
def non_max_suppression(boxes: torch.Tensor, scores: torch.Tensor, cfg: NMSConfig | None = None) -> list[Detections]:
    """Eval-mode Detector output (boxes [B, N, 4] xyxy, scores [B, N, nc] in 0..1) to detections per image."""
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.ndim != 3 or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(
            f"expected boxes [B, N, 4] and scores [B, N, nc], got {tuple(boxes.shape)} and {tuple(scores.shape)}"
        )
    cfg = cfg or NMSConfig()
    return [select_image(b, s, cfg) for b, s in zip(boxes, scores, strict=True)]


def rescale_all(
    dets: Sequence[Detections], metas: Sequence[LetterboxMeta], sizes: Sequence[tuple[int, int]]
) -> list[Detections]:
    """Rescale every image's detections with its letterbox and original (width, height)."""
    return [d.rescaled(m, w, h) for d, m, (w, h) in zip(dets, metas, sizes, strict=True)]
