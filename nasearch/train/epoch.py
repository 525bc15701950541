"""One training epoch: forward, loss, gradient accumulation to a nominal batch, clipping, AMP, EMA.

Shared by the full trainer and QAT fine-tuning (and usable by short proxy training): everything that
changes between them (model, loss, schedule, EMA or not) comes in through `StepContext`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nasearch.train.ema import ModelEMA
from nasearch.train.schedule import Schedule

LossFn = Callable[[Any, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# (raw outputs, images, targets) → (loss to back-propagate, detached per-part losses [k])


@dataclass
class StepContext:
    model: nn.Module  # possibly DDP-wrapped
    loss: LossFn
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    device: torch.device
    accumulate: int = 1  # batches per optimizer step (nominal batch / batch)
    grad_clip: float = 10.0
    amp: bool = False
    scaler: torch.amp.GradScaler | None = None
    ema: ModelEMA | None = None
    loss_names: tuple[str, ...] = ("box", "cls", "dfl")
    on_batch: Callable[[int, dict[str, float]], None] | None = None  # (batch index, running mean losses)
    extra: dict[str, Any] = field(default_factory=dict)


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: training diverged (lower the learning rate)."""


def _optimizer_step(ctx: StepContext) -> None:
    if ctx.scaler is not None:
        ctx.scaler.unscale_(ctx.optimizer)
    if ctx.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), max_norm=ctx.grad_clip)
    if ctx.scaler is not None:
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
    else:
        ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    if ctx.ema is not None:
        ctx.ema.update(ctx.model)


def train_epoch(ctx: StepContext, batches: Iterable[Any], iteration: int) -> tuple[dict[str, float], int]:
    """Train over `batches` (each with `.images` and `.targets`); returns (mean losses, new iteration).

    The iteration counts batches over the whole run and drives the schedule, so a run resumed at an
    epoch boundary continues exactly. Leftover accumulated gradients are applied at the epoch's end.
    """
    ctx.model.train()
    ctx.optimizer.zero_grad(set_to_none=True)
    sums = torch.zeros(len(ctx.loss_names))
    count = pending = 0
    for batch in batches:
        ctx.schedule.apply(ctx.optimizer, iteration)
        images = batch.images.to(ctx.device, non_blocking=True)
        targets = batch.targets.to(ctx.device, non_blocking=True)
        with torch.autocast(ctx.device.type, enabled=ctx.amp):
            raw = ctx.model(images)
            loss, parts = ctx.loss(raw, images, targets)
        if not math.isfinite(float(loss.detach())):
            raise NonFiniteLoss(f"loss is {float(loss)} at iteration {iteration}")
        (ctx.scaler.scale(loss) if ctx.scaler is not None else loss).backward()
        pending += 1
        if pending >= ctx.accumulate:
            _optimizer_step(ctx)
            pending = 0
        sums += parts.detach().float().cpu()[: len(ctx.loss_names)]
        count += 1
        iteration += 1
        if ctx.on_batch is not None:
            ctx.on_batch(count, {k: float(v) / count for k, v in zip(ctx.loss_names, sums, strict=True)})
    if pending:
        _optimizer_step(ctx)
    means = {k: float(v) / max(count, 1) for k, v in zip(ctx.loss_names, sums, strict=True)}
    return means, iteration
