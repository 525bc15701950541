"""Knowledge distillation from a trained teacher checkpoint (same classes, any architecture).

Teacher and student share the anchor grid (strides 8, 16, 32 at the same input size), so the student
learns, anchor by anchor, the teacher's class probabilities (binary cross-entropy to soft targets) and
its box distribution: the DFL bin distribution when both have the same number of bins, else the
expected side distances. The box term is weighted by the teacher's confidence, so background anchors,
where the teacher's boxes mean nothing, do not pull the student around.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nasearch.errors import InputError
from nasearch.nn.detector import dfl_distances, flatten_levels
from nasearch.nn.inspect import fused_copy
from nasearch.train.checkpoint import load_checkpoint


def load_teacher(path: str | Path, nc: int, device: torch.device) -> nn.Module:
    """The teacher's deploy form (fused, frozen, eval mode); its classes must be the student's."""
    model, arch, _ = load_checkpoint(path)
    if arch.data["nc"] != nc:
        raise InputError(path, "arch.nc", f"{nc} classes (the dataset's, as the student)", str(arch.data["nc"]))
    teacher = fused_copy(model).to(device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class Distiller:
    """Adds `weight × (class term + box term)` to the detection loss; per image, like the detection loss."""

    def __init__(self, teacher: nn.Module, weight: float = 1.0, temperature: float = 1.0) -> None:
        self.teacher = teacher
        self.weight = weight
        self.temperature = temperature
        self.bins = int(teacher.bins)  # type: ignore[arg-type]

    @torch.no_grad()
    def targets(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self.teacher.forward_raw(images)  # type: ignore[operator]

    def loss(
        self, images: torch.Tensor, student_raw: list[tuple[torch.Tensor, torch.Tensor]], student_bins: int
    ) -> torch.Tensor:
        teacher_raw = self.targets(images)
        s_box, s_cls = flatten_levels(student_raw)
        t_box, t_cls = flatten_levels(teacher_raw)
        if s_cls.shape != t_cls.shape:
            raise ValueError(f"teacher output {tuple(t_cls.shape)} does not match the student's {tuple(s_cls.shape)}")
        t = self.temperature
        s_cls, t_cls, s_box, t_box = s_cls.float(), t_cls.float(), s_box.float(), t_box.float()
        soft = (t_cls / t).sigmoid()
        cls_term = F.binary_cross_entropy_with_logits(s_cls / t, soft, reduction="none").sum(1)  # [B, N]
        confidence = t_cls.sigmoid().amax(1)  # [B, N]
        b, _, n = s_box.shape
        if student_bins == self.bins and self.bins > 1:
            s_logp = F.log_softmax(s_box.view(b, 4, self.bins, n) / t, 2)
            t_p = F.softmax(t_box.view(b, 4, self.bins, n) / t, 2)
            box_term = (t_p * (t_p.clamp_min(1e-9).log() - s_logp)).sum(2).mean(1) * t * t  # KL, [B, N]
        else:
            box_term = (dfl_distances(s_box, student_bins) - dfl_distances(t_box, self.bins)).abs().mean(1)
        per_image = cls_term.mean(1) + (box_term * confidence).sum(1) / confidence.sum(1).clamp_min(1.0)
        return self.weight * per_image.sum()
