"""The one training engine: optimizer and parameter groups, schedule, EMA, AMP, clipping and the step loop.

Full training (`nasearch train`), short proxy training and QAT fine-tuning differ only in their `Recipe`
(the hyper-parameters) and in what they do around `Engine.run` (epochs and checkpoints, a fixed number
of steps, fake-quantized modules). `Engine.create` turns a recipe into the optimizer, the schedule, the
EMA and the gradient scaler; `Engine.run` trains over a stream of batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from nasearch.errors import InputError
from nasearch.train.ema import ModelEMA
from nasearch.train.schedule import Schedule

OPTIMIZERS = ("sgd", "adamw")
OptimizerName = Literal["sgd", "adamw"]
NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.SyncBatchNorm)

LossFn = Callable[[Any, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# (raw outputs, images, targets) → (loss to back-propagate, detached per-part losses [k])


def check_optimizer(name: object, source: str = "--optimizer") -> str:
    """`name` if it is an optimizer of the engine; anything else is bad input naming the field."""
    if name not in OPTIMIZERS:
        raise InputError(source, "optimizer", f"one of {', '.join(OPTIMIZERS)}", repr(name))
    return str(name)


def param_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(weights that decay, norm weights and other non-matrix parameters, biases): no decay on the last two."""
    decay, no_decay, biases = [], [], []
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            if name == "bias":
                biases.append(p)
            elif isinstance(module, NORM_TYPES) or p.ndim <= 1:
                no_decay.append(p)
            else:
                decay.append(p)
    return decay, no_decay, biases


def build_optimizer(
    model: nn.Module, kind: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW over the three groups; the order matters: the schedule warms group 2 (biases)."""
    kind = check_optimizer(kind)
    decay, no_decay, biases = param_groups(model)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": biases, "weight_decay": 0.0},
    ]
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)


@dataclass(frozen=True)
class Recipe:
    """The hyper-parameters of a training run; the defaults are the full recipe's (Ultralytics' values)."""

    optimizer: str = "sgd"
    lr0: float = 0.01
    lrf: float = 0.01  # final learning rate as a fraction of lr0
    schedule: Literal["linear", "cosine"] = "cosine"
    warmup_iters: int = 0
    decay_after_warmup: bool = False  # False: decay over the whole run (see `Schedule`)
    momentum: float = 0.937
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    weight_decay: float = 5e-4  # at the nominal batch
    nbs: int | None = 64  # nominal batch: gradients accumulate up to it; None: one optimizer step per batch
    grad_clip: float = 10.0  # max gradient norm (0: off)
    ema_decay: float | None = 0.9999  # None: no EMA
    ema_tau: float = 2000.0
    amp: bool = True  # mixed precision where the device has it (CUDA)

    def accumulate(self, batch: int) -> int:
        """Batches per optimizer step."""
        return 1 if self.nbs is None else max(round(self.nbs / batch), 1)

    def scaled_weight_decay(self, batch: int) -> float:
        """Weight decay per optimizer step: scaled to the batch actually accumulated."""
        if self.nbs is None:
            return self.weight_decay
        return self.weight_decay * batch * self.accumulate(batch) / self.nbs

    def make_schedule(self, total_iters: int) -> Schedule:
        return Schedule(
            self.lr0,
            self.lrf,
            total_iters,
            self.warmup_iters,
            self.schedule,
            self.momentum,
            self.warmup_momentum,
            self.warmup_bias_lr,
            self.decay_after_warmup,
        )


@dataclass(frozen=True)
class StepRecord:
    """One batch of `Engine.run`, for callers that keep a per-step history."""

    iteration: int
    loss: float
    parts: torch.Tensor  # detached per-part losses, as the loss function returned them
    lr: float  # of parameter group 0 for this batch
    images: int


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or infinite: training diverged (lower the learning rate)."""


@dataclass
class Engine:
    """Everything one training step needs; `run` trains over batches. Build it with `Engine.create`."""

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
    on_step: Callable[[StepRecord], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        model: nn.Module,
        recipe: Recipe,
        loss: LossFn,
        batch: int,
        total_iters: int,
        device: torch.device | None = None,
    ) -> Engine:
        """The optimizer, schedule, EMA and scaler of `recipe` for `model`, trained `batch` images at a time
        (the total over all processes) for `total_iters` batches."""
        device = device if device is not None else next(model.parameters()).device
        optimizer = build_optimizer(
            model, recipe.optimizer, recipe.lr0, recipe.momentum, recipe.scaled_weight_decay(batch)
        )
        amp = recipe.amp and device.type == "cuda"
        ema = ModelEMA(model, recipe.ema_decay, recipe.ema_tau) if recipe.ema_decay is not None else None
        return cls(
            model,
            loss,
            optimizer,
            recipe.make_schedule(total_iters),
            device,
            recipe.accumulate(batch),
            recipe.grad_clip,
            amp,
            torch.amp.GradScaler("cuda") if amp else None,
            ema,
        )

    def _optimizer_step(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)

    def run(self, batches: Iterable[Any], iteration: int) -> tuple[dict[str, float], int]:
        """Train over `batches` ((images, targets, ...) each); returns (mean losses, new iteration).

        The iteration counts batches over the whole run and drives the schedule, so a run resumed at an
        epoch boundary continues exactly. Leftover accumulated gradients are applied at the end.
        """
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums = torch.zeros(len(self.loss_names))
        count = pending = 0
        for batch in batches:
            self.schedule.apply(self.optimizer, iteration)
            images = batch[0].to(self.device, non_blocking=True)
            targets = batch[1].to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, enabled=self.amp):
                raw = self.model(images)
                loss, parts = self.loss(raw, images, targets)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLoss(f"non-finite loss {value} at iteration {iteration} ({parts.tolist()})")
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            pending += 1
            if pending >= self.accumulate:
                self._optimizer_step()
                pending = 0
            parts = parts.detach().float().cpu()[: len(self.loss_names)]
            sums += parts
            count += 1
            if self.on_step is not None:
                self.on_step(StepRecord(iteration, value, parts, self.optimizer.param_groups[0]["lr"], len(images)))
            iteration += 1
            if self.on_batch is not None:
                self.on_batch(count, {k: float(v) / count for k, v in zip(self.loss_names, sums, strict=True)})
        if pending:
            self._optimizer_step()
        means = {k: float(v) / max(count, 1) for k, v in zip(self.loss_names, sums, strict=True)}
        return means, iteration
