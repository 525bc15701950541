"""Non-maximum suppression inside the exported graph (`nasearch export --nms`).

The ONNX operator `NonMaxSuppression` does per-class NMS; a `TopK` then keeps the `max_det` best
detections. The PyTorch side computes the same thing (torchvision NMS class by class), so the exported
graph can be checked against it. Output: `detections [K, 7]` = (image index, x1, y1, x2, y2, score,
class), best first, K <= max_det; batch 1 only.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import nms

DETECTION_COLUMNS = ("image", "x1", "y1", "x2", "y2", "score", "class")


class _NonMaxSuppression(torch.autograd.Function):
    """boxes [B, N, 4] xyxy, scores [B, C, N] → selected [K, 3] (batch, class, box) as ONNX defines it."""

    @staticmethod
    def forward(
        ctx,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        max_per_class: torch.Tensor,  # type: ignore[override]
        iou: torch.Tensor,
        threshold: torch.Tensor,
    ) -> torch.Tensor:
        rows = []
        limit = int(max_per_class)
        for b in range(boxes.shape[0]):
            for c in range(scores.shape[1]):
                s = scores[b, c]
                keep = (s > threshold).nonzero().flatten()
                if keep.numel() == 0:
                    continue
                chosen = keep[nms(boxes[b, keep], s[keep], float(iou))][:limit]
                rows.append(torch.stack([torch.full_like(chosen, b), torch.full_like(chosen, c), chosen], 1))
        return torch.cat(rows) if rows else torch.zeros(0, 3, dtype=torch.int64)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou, threshold):  # type: ignore[no-untyped-def]
        return g.op("NonMaxSuppression", boxes, scores, max_per_class, iou, threshold, center_point_box_i=0)


class _TopK(torch.autograd.Function):
    """The min(len, k) largest values and their indices; exported as TopK with a computed K."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return torch.topk(values, min(values.shape[0], int(k)), sorted=True)

    @staticmethod
    def symbolic(g, values, k):  # type: ignore[no-untyped-def]
        n = g.op("Shape", values)
        k_1d = g.op("Reshape", k, g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64)))
        kk = g.op("Min", n, k_1d)
        return g.op("TopK", values, kk, axis_i=0, largest_i=1, sorted_i=1, outputs=2)


class DetectorWithNMS(nn.Module):
    """A detector in eval mode followed by NMS; returns `detections [K, 7]` (see the module docstring)."""

    def __init__(self, detector: nn.Module, conf: float = 0.25, iou: float = 0.7, max_det: int = 300) -> None:
        super().__init__()
        self.detector = detector
        self.register_buffer("conf", torch.tensor([conf], dtype=torch.float32))
        self.register_buffer("iou", torch.tensor([iou], dtype=torch.float32))
        self.register_buffer("max_det", torch.tensor([max_det], dtype=torch.int64))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, scores = self.detector(images)  # [1, N, 4], [1, N, C]
        n, c = scores.shape[1], scores.shape[2]
        selected = _NonMaxSuppression.apply(boxes, scores.transpose(1, 2), self.max_det, self.iou, self.conf)
        image, cls, index = selected[:, 0], selected[:, 1], selected[:, 2]
        det_scores = scores.reshape(-1).index_select(0, (image * n + index) * c + cls)
        top_scores, order = _TopK.apply(det_scores, self.max_det)
        picked = index.index_select(0, order)
        det_boxes = boxes.reshape(-1, 4).index_select(0, image.index_select(0, order) * n + picked)
        return torch.cat(
            [
                image.index_select(0, order).unsqueeze(1).float(),
                det_boxes,
                top_scores.unsqueeze(1),
                cls.index_select(0, order).unsqueeze(1).float(),
            ],
            1,
        )
