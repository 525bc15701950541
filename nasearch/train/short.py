"""A small, real training loop for proxies and tests: optimizer, warm-up + cosine schedule, loss history.

Deterministic on CPU for a given seed, model initialisation and loader seed (the loader draws its own
augmentation and order from its seed). The full trainer (EMA, checkpoints, resume, DDP) lives elsewhere;
this loop is for budgets of a few hundred to a few thousand steps. A non-finite loss stops training with
`FloatingPointError`, so a search can mark the candidate failed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from nasearch.train.loss import DetectionLoss

OptimizerName = Literal["sgd", "adamw"]


@dataclass
class History:
    """What happened during training, one entry per optimizer step."""

    losses: list[float] = field(default_factory=list)  # total loss (batch-scaled, see nasearch.train.loss)
    parts: list[dict[str, float]] = field(default_factory=list)  # box / cls / dfl components
    lrs: list[float] = field(default_factory=list)
    images: int = 0  # images seen
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.losses)

    def mean_loss(self, last: int = 20) -> float:
        tail = self.losses[-last:]
        return sum(tail) / len(tail) if tail else math.nan


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only; never on norm layers or biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, name: OptimizerName, lr: float, weight_decay: float,
                   momentum: float = 0.937) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {name!r}")


def lr_factor(step: int, total: int, warmup: int, final: float) -> float:
    """Linear warm-up from 0, then cosine decay from 1 to `final` at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(total - warmup - 1, 1)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def _batches(loader: Iterable[Any]) -> Iterator[Any]:
    """Cycle the loader forever (each pass is a new epoch for the data pipeline)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader yielded no batches")


def resolve_steps(loader: Any, steps: int | None, epochs: float | None) -> int:
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps and epochs")
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        return steps
    assert epochs is not None
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    return max(1, math.ceil(epochs * len(loader)))


def train_steps(model: nn.Module, loader: Iterable[Any], steps: int | None = None,
                epochs: float | None = None, lr: float = 2e-3, seed: int = 0,
                optimizer: OptimizerName = "adamw", momentum: float = 0.9,
                weight_decay: float = 5e-4, warmup: int | None = None, final_lr: float = 0.05,
                grad_clip: float = 10.0, loss: DetectionLoss | None = None,
                on_step: Callable[[int, float], None] | None = None) -> History:
    """Train `model` in place for `steps` optimizer steps (or `epochs` passes of the loader).

    The loader yields (images, targets, ...) as `nasearch.data.make_loader` does. `warmup` defaults to 10%
    of the steps (at most 300); `final_lr` is the last learning rate as a fraction of `lr`. `on_step(step,
    loss)` is called after every step (e.g. for progress or pruning). Returns the History.
    """
    total = resolve_steps(loader, steps, epochs)
    warmup = min(300, max(1, total // 10)) if warmup is None else max(0, warmup)
    torch.manual_seed(seed)
    criterion = loss or DetectionLoss.for_model(model)
    opt = make_optimizer(model, optimizer, lr, weight_decay, momentum)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup, final_lr))
    device = next(model.parameters()).device
    history = History()
    start = time.perf_counter()
    model.train()
    batches = _batches(loader)
    for step in range(total):
        images, targets = next(batches)[:2]
        images, targets = images.to(device, non_blocking=True), targets.to(device)
        value, parts = criterion(model(images), targets)
        if not torch.isfinite(value):
            raise FloatingPointError(f"non-finite loss {float(value.detach())} at step {step} ({parts})")
        opt.zero_grad(set_to_none=True)
        value.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        history.lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
        history.losses.append(float(value.detach()))
        history.parts.append(parts)
        history.images += len(images)
        if on_step is not None:
            on_step(step, history.losses[-1])
    history.seconds = time.perf_counter() - start
    return history
