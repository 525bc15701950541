"""The detection loss of anchor-free YOLO heads: CIoU box loss, distribution focal loss, BCE classification.

Works for every head that follows the output contract of `nasearch.nn.detector` (per level
`(box_logits [B, 4*bins, H, W], cls_logits [B, nc, H, W])`). With `bins > 1` the box branch predicts a
distribution over `bins` integer distances (in stride units) for each side and the DFL term pushes its mass
onto the two bins around the target distance; with `bins == 1` the branch regresses the distances directly
(YOLOv6-N/S style) and there is no DFL term.

Normalization: each component is summed over anchors and divided by the sum of the soft classification
targets of the batch (about the number of positives), weighted by `LossWeights`. The returned total is
that weighted sum multiplied by the batch size, the Ultralytics convention, so SGD learning rates and weight
decays tuned for YOLOv8 (lr0 0.01 at a nominal batch of 64) carry over; the logged components are not
multiplied (total == batch_size * (box + cls + dfl)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import complete_box_iou_loss, sigmoid_focal_loss

from nasearch.nn.detector import STRIDES, dfl_distances, flatten_levels, make_anchors
from nasearch.train.assigner import Assignment, TaskAlignedAssigner

RawOutput = list[tuple[torch.Tensor, torch.Tensor]]
MIN_SIDE = 1e-3  # stride units: predicted boxes are kept at least this wide so CIoU's aspect term is finite
DFL_MARGIN = 0.01  # target distances stop just short of the last bin so its right neighbour exists


@dataclass(frozen=True)
class LossWeights:
    """YOLOv8 defaults."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5


def pad_targets(targets: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loader targets [M, 6] (batch_index, cls, x1, y1, x2, y2) to padded per-image tensors.

    Returns labels [B, K] int64, boxes [B, K, 4] and a mask [B, K] (False for padding), K the most boxes
    any image has.
    """
    if targets.ndim != 2 or targets.shape[1] != 6:
        raise ValueError(f"targets must be [M, 6] (batch_index, cls, x1, y1, x2, y2), got {tuple(targets.shape)}")
    device = targets.device
    image = targets[:, 0].long()
    if len(image) and (int(image.min()) < 0 or int(image.max()) >= batch_size):
        raise ValueError(f"target batch indices must lie in 0..{batch_size - 1}")
    counts = torch.bincount(image, minlength=batch_size)
    k = int(counts.max()) if len(image) else 0
    labels = torch.zeros(batch_size, k, dtype=torch.long, device=device)
    boxes = torch.zeros(batch_size, k, 4, dtype=torch.float32, device=device)
    mask = torch.zeros(batch_size, k, dtype=torch.bool, device=device)
    if k:
        order = torch.argsort(image, stable=True)
        image = image[order]
        first = torch.cumsum(counts, 0) - counts  # row where each image's boxes start in sorted order
        slot = torch.arange(len(image), device=device) - first[image]
        labels[image, slot] = targets[order, 1].long()
        boxes[image, slot] = targets[order, 2:].float()
        mask[image, slot] = True
    return labels, boxes, mask


def dfl_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss: logits [P, 4, bins], target distances [P, 4] in 0..bins-1 -> [P].

    Cross-entropy to the two integer bins around each target, weighted by closeness, so the expected value
    of the predicted distribution is pulled onto the target.
    """
    bins = logits.shape[-1]
    target = target.clamp(0, bins - 1 - DFL_MARGIN)
    left = target.floor().long()
    weight_left = (left + 1) - target
    flat = logits.reshape(-1, bins)
    ce_left = F.cross_entropy(flat, left.reshape(-1), reduction="none").view_as(target)
    ce_right = F.cross_entropy(flat, (left + 1).reshape(-1), reduction="none").view_as(target)
    return (ce_left * weight_left + ce_right * (1 - weight_left)).mean(-1)


def varifocal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.75, gamma: float = 2.0) -> torch.Tensor:
    """Varifocal loss (elementwise): BCE to the soft targets; negatives down-weighted by alpha * p^gamma."""
    prob = logits.sigmoid().detach()
    positive = (target > 0).to(logits.dtype)
    weight = alpha * prob.pow(gamma) * (1 - positive) + target * positive
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight


def _sane_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Keep x2 >= x1 + MIN_SIDE (and y), e.g. for direct regression (bins == 1) with negative distances."""
    lo = boxes[..., :2]
    hi = torch.maximum(boxes[..., 2:], lo + MIN_SIDE)
    return torch.cat((lo, hi), -1)


class DetectionLoss:
    """Task-aligned detection loss; call with the raw (training-mode) model output and loader targets.

    `classification` is "bce" (YOLOv8), "varifocal" (YOLOv6 / YOLO-NAS) or "focal".
    """

    def __init__(
        self,
        nc: int,
        bins: int,
        strides: tuple[int, ...] = STRIDES,
        weights: LossWeights | None = None,
        classification: str = "bce",
        assigner: TaskAlignedAssigner | None = None,
    ) -> None:
        if nc < 1 or bins < 1:
            raise ValueError(f"nc and bins must be positive, got nc={nc}, bins={bins}")
        if classification not in ("bce", "varifocal", "focal"):
            raise ValueError(f"classification must be bce, varifocal or focal, got {classification!r}")
        self.nc = nc
        self.bins = bins
        self.strides = tuple(strides)
        self.weights = weights or LossWeights()
        self.classification = classification
        self.assigner = assigner or TaskAlignedAssigner()

    @classmethod
    def for_model(cls, model: torch.nn.Module, **kwargs: object) -> DetectionLoss:
        """The loss matching a Detector's classes, DFL bins and strides."""
        return cls(int(model.nc), int(model.bins), tuple(model.strides), **kwargs)  # type: ignore[arg-type]

    def __call__(self, raw: RawOutput, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(total loss for backward, {"box", "cls", "dfl"} weighted components as floats)."""
        total, parts, _ = self.compute(raw, targets)
        return total, parts

    def compute(self, raw: RawOutput, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float], Assignment]:
        """As `__call__`, also returning the assignment (for tests and diagnostics)."""
        box_logits, cls_logits = flatten_levels(raw)
        batch, n = cls_logits.shape[0], cls_logits.shape[2]
        if box_logits.shape[1] != 4 * self.bins or cls_logits.shape[1] != self.nc:
            raise ValueError(
                f"head outputs {box_logits.shape[1]} box and {cls_logits.shape[1]} class "
                f"channels; the loss expects {4 * self.bins} (bins={self.bins}) and {self.nc}"
            )
        box_logits, cls_logits = box_logits.float(), cls_logits.float().transpose(1, 2)  # [B, N, nc]
        anchors, stride = make_anchors([b for b, _ in raw], self.strides)  # pixels [N, 2], [N, 1]
        centres = anchors / stride  # anchor centres in stride units
        dist = dfl_distances(box_logits, self.bins).transpose(1, 2)  # [B, N, 4] stride units
        pred = torch.cat((centres - dist[..., :2], centres + dist[..., 2:]), -1)  # xyxy stride units

        labels, gt_boxes, gt_mask = pad_targets(targets.to(cls_logits.device), batch)
        if bool(gt_mask.any()) and int(labels[gt_mask].max()) >= self.nc:
            raise ValueError(f"target class {int(labels[gt_mask].max())} is out of range for nc={self.nc}")
        assigned = self.assigner(
            cls_logits.detach().sigmoid(), _sane_boxes(pred.detach()) * stride, anchors, labels, gt_boxes, gt_mask
        )
        norm = assigned.scores.sum().clamp(min=1.0)

        cls_loss = self._classification(cls_logits, assigned.scores).sum() / norm
        fg = assigned.foreground
        if bool(fg.any()):
            weight = assigned.scores.sum(-1)[fg]  # [P] alignment quality of each positive
            target = assigned.boxes / stride  # [B, N, 4] stride units
            ciou = complete_box_iou_loss(_sane_boxes(pred[fg]), target[fg], reduction="none")
            box_loss = (ciou * weight).sum() / norm
            if self.bins > 1:
                target_dist = torch.cat((centres - target[..., :2], target[..., 2:] - centres), -1)[fg]
                bin_logits = box_logits.view(batch, 4, self.bins, n).permute(0, 3, 1, 2)[fg]  # [P, 4, bins]
                dfl = (dfl_loss(bin_logits, target_dist) * weight).sum() / norm
            else:
                dfl = box_logits.sum() * 0.0
        else:  # no objects in the batch: only the classification term (keeps the graph connected)
            box_loss = dfl = box_logits.sum() * 0.0

        w = self.weights
        box_loss, cls_loss, dfl = box_loss * w.box, cls_loss * w.cls, dfl * w.dfl
        total = (box_loss + cls_loss + dfl) * batch
        parts = {"box": float(box_loss.detach()), "cls": float(cls_loss.detach()), "dfl": float(dfl.detach())}
        return total, parts, assigned

    def _classification(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.classification == "varifocal":
            return varifocal_loss(logits, target)
        if self.classification == "focal":
            return sigmoid_focal_loss(logits, target, reduction="none")
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
