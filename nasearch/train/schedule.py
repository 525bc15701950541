"""Learning-rate and momentum schedule: linear warm-up, then cosine or linear decay to `lr0 * lrf`.

Two shapes: the full recipe's decay runs over the whole run and the warm-up rises towards the decayed
value (biases come down from `warmup_bias_lr`); with `decay_after_warmup` (the short recipe) every group
rises to lr0 at the end of the warm-up and the decay runs over the remaining iterations.
Everything is a pure function of the global iteration, so a resumed run lands on exactly the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

BIAS_GROUP = 2  # index of the bias parameter group (see engine.param_groups)


@dataclass(frozen=True)
class Schedule:
    lr0: float
    lrf: float  # final learning rate as a fraction of lr0
    total_iters: int
    warmup_iters: int
    kind: Literal["cosine", "linear"] = "cosine"
    momentum: float = 0.937
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    decay_after_warmup: bool = False

    def decay(self, it: int) -> float:
        """Multiplier of lr0 after warm-up, from 1 at the decay's start to lrf at the last iteration."""
        if self.decay_after_warmup:
            t = (it - self.warmup_iters) / max(self.total_iters - self.warmup_iters - 1, 1)
        else:
            t = it / max(self.total_iters - 1, 1)
        t = min(max(t, 0.0), 1.0)
        if self.kind == "cosine":
            return self.lrf + (1 - self.lrf) * 0.5 * (1 + math.cos(math.pi * t))
        return 1 - (1 - self.lrf) * t

    def lr(self, it: int, group: int) -> float:
        """Learning rate of a parameter group; during warm-up biases come down from warmup_bias_lr."""
        if self.decay_after_warmup and it < self.warmup_iters:
            return self.lr0 * ((it + 1) / self.warmup_iters)
        target = self.lr0 * self.decay(it)
        if it >= self.warmup_iters:
            return target
        w = it / self.warmup_iters
        start = self.warmup_bias_lr if group == BIAS_GROUP else 0.0
        return start + (target - start) * w

    def beta(self, it: int) -> float:
        """SGD momentum (or AdamW beta1), ramped up during warm-up."""
        if it >= self.warmup_iters:
            return self.momentum
        return self.warmup_momentum + (self.momentum - self.warmup_momentum) * it / self.warmup_iters

    def apply(self, optimizer: torch.optim.Optimizer, it: int) -> None:
        for i, group in enumerate(optimizer.param_groups):
            group["lr"] = self.lr(it, i)
            if "momentum" in group:
                group["momentum"] = self.beta(it)
            elif "betas" in group:
                group["betas"] = (self.beta(it), group["betas"][1])


def warmup_iterations(warmup_epochs: float, iters_per_epoch: int, total_iters: int, minimum: int = 100) -> int:
    """Warm-up length: `warmup_epochs` worth of iterations (at least `minimum`), never over half the run."""
    if warmup_epochs <= 0:
        return 0
    return int(min(max(round(warmup_epochs * iters_per_epoch), minimum), total_iters // 2))
