"""Task-aligned label assignment (TOOD, as used by YOLOv6/v8/NAS): which anchors learn which ground truth.

An anchor is a candidate for a ground-truth box when its centre lies inside the box. Among the candidates,
each box takes the `topk` anchors with the highest alignment metric `score^alpha * IoU^beta`, where `score`
is the predicted probability of the box's class and IoU that of the predicted box with the ground truth:
anchors that already classify *and* localize well are the ones trained as positives, so the two heads agree.
An anchor claimed by several boxes keeps the box it overlaps most. Classification targets are the alignment
metric rescaled so that each box's best anchor gets that box's best IoU (soft, quality-aware labels).

A box too small to contain any anchor centre (tiny objects at low resolution) falls back to the anchor
nearest its centre, so it is never silently ignored by training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

EPS = 1e-9


@dataclass(frozen=True)
class Assignment:
    """Per-anchor training targets for a batch: B images, N anchors, C classes."""

    labels: torch.Tensor  # [B, N] int64 class of the assigned box (0 where background)
    boxes: torch.Tensor  # [B, N, 4] xyxy pixels of the assigned box (a copy of box 0 where background)
    scores: torch.Tensor  # [B, N, C] soft classification targets (zero rows where background)
    foreground: torch.Tensor  # [B, N] bool
    gt_index: torch.Tensor  # [B, N] int64 index of the assigned box in the padded ground truth


def centres_inside(anchors: torch.Tensor, gt_boxes: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """[B, M, N] bool: anchor centre strictly inside the box (anchors [N, 2], boxes [B, M, 4])."""
    lt = anchors.view(1, 1, -1, 2) - gt_boxes[..., None, :2]
    rb = gt_boxes[..., None, 2:] - anchors.view(1, 1, -1, 2)
    return torch.cat((lt, rb), -1).amin(-1) > eps


def nearest_anchor(anchors: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """[B, M, N] bool: one-hot of the anchor closest to each box centre."""
    centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
    dist = (centres[..., None, :] - anchors.view(1, 1, -1, 2)).pow(2).sum(-1)
    return torch.zeros_like(dist, dtype=torch.bool).scatter_(-1, dist.argmin(-1, keepdim=True), True)


def batched_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B, M, 4] x [B, N, 4] -> [B, M, N] IoU, image by image."""
    return torch.stack([box_iou(x, y) for x, y in zip(a, b, strict=True)])


class TaskAlignedAssigner:
    """Assigns ground-truth boxes to anchors by the task-alignment metric (see the module docstring)."""

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0) -> None:
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        self.topk = topk
        self.alpha = alpha
        self.beta = beta

    @torch.no_grad()
    def __call__(
        self,
        pred_scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        anchors: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_mask: torch.Tensor,
    ) -> Assignment:
        """Assign a batch.

        pred_scores [B, N, C] probabilities, pred_boxes [B, N, 4] xyxy pixels, anchors [N, 2] pixels;
        gt_labels [B, M] int64, gt_boxes [B, M, 4] xyxy pixels, gt_mask [B, M] bool (False = padding).
        """
        b, n, c = pred_scores.shape
        m = gt_boxes.shape[1]
        device = pred_scores.device
        if m == 0 or not bool(gt_mask.any()):
            return Assignment(
                labels=torch.zeros(b, n, dtype=torch.long, device=device),
                boxes=torch.zeros(b, n, 4, dtype=pred_boxes.dtype, device=device),
                scores=torch.zeros_like(pred_scores),
                foreground=torch.zeros(b, n, dtype=torch.bool, device=device),
                gt_index=torch.zeros(b, n, dtype=torch.long, device=device),
            )
        pred_scores, pred_boxes, gt_boxes = pred_scores.float(), pred_boxes.float(), gt_boxes.float()
        valid = gt_mask[..., None]  # [B, M, 1]
        candidates = self._candidates(anchors, gt_boxes) & valid  # [B, M, N]
        iou = batched_box_iou(gt_boxes, pred_boxes) * candidates  # [B, M, N]
        class_index = gt_labels.long().clamp(0, c - 1)[..., None].expand(-1, -1, n)  # [B, M, N]
        class_score = pred_scores.transpose(1, 2).gather(1, class_index)  # [B, M, N]
        metric = class_score.pow(self.alpha) * iou.pow(self.beta) * candidates

        k = min(self.topk, n)
        ranked = torch.where(candidates, metric, -1.0)  # candidates before non-candidates, even at metric 0
        top = ranked.topk(k, dim=-1).indices  # [B, M, k]
        chosen = torch.zeros_like(candidates).scatter_(-1, top, True)
        positive = chosen & candidates  # [B, M, N]
        positive = self._one_box_per_anchor(positive, iou)

        foreground = positive.any(1)  # [B, N]
        gt_index = positive.float().argmax(1)  # [B, N]; 0 where background
        labels = gt_labels.long().gather(1, gt_index).clamp(0, c - 1)  # [B, N]
        boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))  # [B, N, 4]

        metric = metric * positive
        best_metric = metric.amax(-1, keepdim=True)  # [B, M, 1]
        best_iou = (iou * positive).amax(-1, keepdim=True)  # [B, M, 1]
        quality = (metric * best_iou / (best_metric + EPS)).amax(1)  # [B, N]
        scores = torch.zeros_like(pred_scores)
        scores.scatter_(-1, labels[..., None], quality[..., None])
        scores = scores * foreground[..., None]
        return Assignment(labels=labels, boxes=boxes, scores=scores, foreground=foreground, gt_index=gt_index)

    @staticmethod
    def _candidates(anchors: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
        inside = centres_inside(anchors, gt_boxes)
        empty = ~inside.any(-1, keepdim=True)  # boxes that contain no anchor centre
        if bool(empty.any()):
            inside = inside | (nearest_anchor(anchors, gt_boxes) & empty)
        return inside

    @staticmethod
    def _one_box_per_anchor(positive: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
        """Anchors claimed by several boxes keep only the box they overlap most."""
        shared = positive.sum(1, keepdim=True) > 1  # [B, 1, N]
        if not bool(shared.any()):
            return positive
        owner = torch.where(positive, iou, -1.0).argmax(1, keepdim=True)  # [B, 1, N]
        best = torch.zeros_like(positive).scatter_(1, owner, True)
        return torch.where(shared, best & positive, positive)
