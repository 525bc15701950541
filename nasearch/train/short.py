"""The short training recipe for proxies and tests: AdamW, warm-up + cosine schedule, a per-step history.

Deterministic on CPU for a given seed, model initialisation and loader seed (the loader draws its own
augmentation and order from its seed). The full trainer (EMA, checkpoints, resume, DDP) lives elsewhere;
this recipe is for budgets of a few hundred to a few thousand steps. It runs on the project's one training
engine (`nasearch.train.engine`). A non-finite loss stops training with `FloatingPointError`, so a search
can mark the candidate failed.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nasearch.train.engine import Engine, OptimizerName, Recipe, StepRecord, check_optimizer
from nasearch.train.loss import DetectionLoss


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


def short_recipe(
    total: int,
    lr: float = 2e-3,
    optimizer: str = "adamw",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    warmup: int | None = None,
    final_lr: float = 0.05,
    grad_clip: float = 10.0,
) -> Recipe:
    """The short recipe: one step per batch, warm-up to `lr` (10% of the steps, at most 300, by default),
    then cosine decay to `final_lr * lr`; no EMA, no accumulation, no AMP."""
    warmup = min(300, max(1, total // 10)) if warmup is None else max(0, warmup)
    return Recipe(
        optimizer=check_optimizer(optimizer),
        lr0=lr,
        lrf=final_lr,
        schedule="cosine",
        warmup_iters=warmup,
        decay_after_warmup=True,
        momentum=momentum,
        warmup_momentum=momentum,
        weight_decay=weight_decay,
        nbs=None,
        grad_clip=grad_clip,
        ema_decay=None,
        amp=False,
    )


def lr_factor(step: int, total: int, warmup: int, final: float) -> float:
    """Linear warm-up from 0, then cosine decay from 1 to `final` at the last step (the short schedule)."""
    return short_recipe(total, lr=1.0, warmup=warmup, final_lr=final).make_schedule(total).lr(step, 0)


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


def train_steps(
    model: nn.Module,
    loader: Iterable[Any],
    steps: int | None = None,
    epochs: float | None = None,
    lr: float = 2e-3,
    seed: int = 0,
    optimizer: OptimizerName = "adamw",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    warmup: int | None = None,
    final_lr: float = 0.05,
    grad_clip: float = 10.0,
    loss: DetectionLoss | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> History:
    """Train `model` in place for `steps` optimizer steps (or `epochs` passes of the loader).

    The loader yields (images, targets, ...) as `nasearch.data.make_loader` does. `warmup` defaults to 10%
    of the steps (at most 300); `final_lr` is the last learning rate as a fraction of `lr`. `on_step(step,
    loss)` is called after every step (e.g. for progress or pruning). Returns the History.
    """
    total = resolve_steps(loader, steps, epochs)
    recipe = short_recipe(total, lr, optimizer, momentum, weight_decay, warmup, final_lr, grad_clip)
    torch.manual_seed(seed)
    criterion = loss or DetectionLoss.for_model(model)
    names = ("box", "cls", "dfl")

    def loss_fn(raw: Any, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        value, parts = criterion(raw, targets)
        return value, torch.tensor([parts[k] for k in names])

    history = History()

    def record(step: StepRecord) -> None:
        history.lrs.append(step.lr)
        history.losses.append(step.loss)
        history.parts.append({k: float(v) for k, v in zip(names, step.parts, strict=True)})
        history.images += step.images
        if on_step is not None:
            on_step(step.iteration, step.loss)

    engine = Engine.create(model, recipe, loss_fn, batch=1, total_iters=total)
    engine.on_step = record
    start = time.perf_counter()
    engine.run(itertools.islice(_batches(loader), total), 0)  # NonFiniteLoss is a FloatingPointError
    history.seconds = time.perf_counter() - start
    return history
