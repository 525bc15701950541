"""Full training of one architecture (`nasearch train`): the YOLOv8-class recipe.

The full recipe of the training engine (`nasearch.train.engine`, built by `TrainConfig.recipe`): SGD or
AdamW with three parameter groups (decayed weights; norm weights and other vectors without decay;
biases without decay and a high warm-up learning rate), linear warm-up then linear or cosine decay,
gradient accumulation to a nominal batch of 64, EMA of weights, AMP on CUDA. Around the engine: mosaic
off for the last epochs, DDP under torchrun, optional distillation from a teacher checkpoint.
Every epoch: COCO mAP of the EMA weights on val, `results.csv`, `results.png`, `curve.json` (the validation
curve, final and best mAP, whether it has stopped rising: `nasearch.train.curve`), `last.pt`, `best.pt`.
A run resumed from `last.pt` continues exactly (same weights as an uninterrupted run on the CPU).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nasearch.data import AugmentConfig, load_split, make_loader
from nasearch.data.loader import DetectionDataset, DetectionLoader, EpochSampler, ItemKey
from nasearch.errors import OPTION, InputError
from nasearch.space import Architecture, build_model
from nasearch.space.memory import require
from nasearch.train import checkpoint as ckpt_io
from nasearch.train.curve import CURVE, curve_report, write_curve
from nasearch.train.distill import Distiller, load_teacher
from nasearch.train.ema import ModelEMA, unwrap
from nasearch.train.engine import Engine, Recipe
from nasearch.train.plots import plot_results, write_csv
from nasearch.train.schedule import warmup_iterations
from nasearch.validation import Imgsz, validate_model

LAST, BEST, CSV, PNG = "last.pt", "best.pt", "results.csv", "results.png"
RUNTIME_KEYS = ("device", "threads", "workers")  # may change when a run is resumed; the recipe may not


class TrainConfig(BaseModel):
    """Training settings (Ultralytics' defaults where they have one); stored in every checkpoint."""

    model_config = ConfigDict(extra="forbid")

    epochs: Annotated[int, Field(ge=1, le=10000)] = 100
    imgsz: Imgsz | None = None  # default: the architecture's
    batch: Annotated[int, Field(ge=1, le=4096)] = 16  # total over all GPUs
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr0: Annotated[float, Field(gt=0, le=1)] | None = None  # default 0.01 (SGD) or 0.001 (AdamW)
    lrf: Annotated[float, Field(gt=0, le=1)] = 0.01
    schedule: Literal["linear", "cosine"] = "linear"
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.937
    weight_decay: Annotated[float, Field(ge=0, le=0.1)] = 5e-4
    warmup_epochs: Annotated[float, Field(ge=0, le=100)] = 3.0
    warmup_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.8
    warmup_bias_lr: Annotated[float, Field(ge=0, le=1)] = 0.1
    min_warmup_iters: Annotated[int, Field(ge=0)] = 100
    nbs: Annotated[int, Field(ge=1)] = 64  # nominal batch size
    grad_clip: Annotated[float, Field(ge=0)] = 10.0
    ema: bool = True
    ema_decay: Annotated[float, Field(gt=0, lt=1)] = 0.9999
    ema_tau: Annotated[float, Field(gt=0)] = 2000.0
    mosaic: bool = True
    close_mosaic: Annotated[int, Field(ge=0)] = 10  # epochs at the end without mosaic
    augment: AugmentConfig = AugmentConfig()
    box_gain: Annotated[float, Field(ge=0)] = 7.5
    cls_gain: Annotated[float, Field(ge=0)] = 0.5
    dfl_gain: Annotated[float, Field(ge=0)] = 1.5
    classification: Literal["bce", "varifocal", "focal"] = "bce"
    workers: Annotated[int, Field(ge=0, le=64)] = 2
    cache: bool = True  # decoded images in RAM when they fit
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: Annotated[int, Field(ge=1, le=256)] | None = None  # CPU threads of torch (default: torch's)
    amp: bool = True  # mixed precision, CUDA only
    val_batch: Annotated[int, Field(ge=1)] | None = None
    patience: Annotated[int, Field(ge=0)] = 0  # stop after this many epochs without improvement (0: never)
    teacher: str | None = None  # checkpoint to distil from
    distill_weight: Annotated[float, Field(ge=0)] = 1.0
    distill_temperature: Annotated[float, Field(gt=0)] = 1.0

    def initial_lr(self) -> float:
        return self.lr0 if self.lr0 is not None else (0.01 if self.optimizer == "sgd" else 0.001)

    def recipe(self, iters_per_epoch: int) -> Recipe:
        """The full recipe of the engine for a run of `iters_per_epoch` batches per epoch."""
        total = self.epochs * iters_per_epoch
        return Recipe(
            optimizer=self.optimizer,
            lr0=self.initial_lr(),
            lrf=self.lrf,
            schedule=self.schedule,
            warmup_iters=warmup_iterations(self.warmup_epochs, iters_per_epoch, total, self.min_warmup_iters),
            momentum=self.momentum,
            warmup_momentum=self.warmup_momentum,
            warmup_bias_lr=self.warmup_bias_lr,
            weight_decay=self.weight_decay,
            nbs=self.nbs,
            grad_clip=self.grad_clip,
            ema_decay=self.ema_decay if self.ema else None,
            ema_tau=self.ema_tau,
            amp=self.amp,
        )


@dataclass
class TrainResult:
    out: Path
    epochs: int  # epochs finished
    best_epoch: int
    best_fitness: float
    metrics: dict[str, float]  # of the last epoch
    stopped_early: bool
    planned_epochs: int = 0  # the run's setting (the plateau window is a fifth of it)
    history: list[dict[str, Any]] = field(default_factory=list)  # results.csv's rows

    def curve(self) -> dict[str, Any]:
        return curve_report(self.history, self.planned_epochs or self.epochs)

    def as_dict(self) -> dict[str, Any]:
        curve = self.curve()
        return {
            "out": str(self.out),
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_map": self.best_fitness,
            "last": str(self.out / LAST),
            "best": str(self.out / BEST),
            "csv": str(self.out / CSV),
            "plot": str(self.out / PNG),
            "stopped_early": self.stopped_early,
            **{k: v for k, v in self.metrics.items()},
            "final_map": curve["final_map"],
            "final_map50": curve["final_map50"],
            "plateau": curve["plateau"],
            "curve": curve["curve"],
            "curve_file": str(self.out / CURVE),
        }


# -- distributed ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """What torchrun put in the environment (one process per GPU), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)


def select_device(spec: str, info: DistInfo) -> torch.device:
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(OPTION, "device", "cpu (no CUDA GPU is visible here)", spec)
        if info.world > 1:
            return torch.device("cuda", info.local_rank)
        return torch.device(spec)
    if spec != "cpu":
        raise InputError(OPTION, "device", "auto, cpu, cuda or cuda:N", spec)
    return torch.device("cpu")


class ShardedSampler(EpochSampler):
    """The epoch's global order (seeded by seed and epoch), every `world`-th item from `rank` (DDP)."""

    def __init__(self, size: int, shuffle: bool, seed: int, mosaic: bool, rank: int, world: int) -> None:
        super().__init__(size, shuffle, seed, mosaic)
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return (self.size + self.world - 1 - self.rank) // self.world

    def __iter__(self):  # type: ignore[override]
        keys: list[ItemKey] = list(super().__iter__())
        return iter(keys[self.rank :: self.world])


# -- loss and validation (the project's loss and COCO evaluation) ----------------------------------------
def make_loss(
    model: nn.Module, config: TrainConfig, distiller: Any | None = None, world: int = 1
) -> Callable[[Any, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(raw outputs, images, targets) → (loss summed over the batch, detached [box, cls, dfl] per image).

    Under DDP the gradients are averaged over processes, so the loss is scaled by their number to give
    the gradient of the whole (global) batch, as on one device.
    """
    from nasearch.train.loss import DetectionLoss, LossWeights

    weights = LossWeights(config.box_gain, config.cls_gain, config.dfl_gain)
    criterion = DetectionLoss.for_model(unwrap(model), weights=weights, classification=config.classification)
    bins = int(unwrap(model).bins)  # type: ignore[arg-type]

    def loss(raw: Any, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total, parts = criterion(raw, targets)
        if distiller is not None:
            total = total + distiller.loss(images, raw, bins)
        return total * world, torch.tensor([parts["box"], parts["cls"], parts["dfl"]])

    return loss


class _OnDevice(nn.Module):
    """Feeds CPU batches to a model on another device and brings the outputs back (for evaluation)."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.model, self.device = model, device
        self.nc, self.bins, self.strides = model.nc, model.bins, model.strides

    def forward(self, x: torch.Tensor) -> Any:
        out = self.model(x.to(self.device))
        if isinstance(out, tuple):
            return tuple(t.float().cpu() for t in out)
        return [(b.float().cpu(), c.float().cpu()) for b, c in out]


def validate(model: nn.Module, split: Any, imgsz: int, batch: int) -> dict[str, float]:
    """COCO mAP50-95 and mAP50 in percent points of a model on a split."""
    from nasearch.eval.inference import evaluate_model

    device = next(model.parameters()).device
    subject = model if device.type == "cpu" else _OnDevice(model, device)
    result = evaluate_model(subject, split, imgsz=imgsz, batch=batch)
    return {"map": float(result.map), "map50": float(result.map50)}


# -- the trainer ------------------------------------------------------------------------------------------
class Trainer:
    """Trains `arch` on `data` into `out`; construct with `resume_state` to continue a run."""

    def __init__(
        self,
        arch: Architecture,
        data: str,
        out: str | Path,
        config: TrainConfig,
        resume_state: dict[str, Any] | None = None,
        on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.arch, self.data, self.out, self.config = arch, str(data), Path(out), config
        self.resume_state = resume_state
        self.on_epoch_end = on_epoch_end
        self.info = dist_info()
        self._log = log or (lambda msg: print(msg, file=sys.stderr))

    def log(self, msg: str) -> None:
        if self.info.main:
            self._log(msg)

    # -- setup ----------------------------------------------------------------------------------------
    def _loader(self, split: Any, imgsz: int, batch: int, augment: bool, mosaic: bool) -> DetectionLoader:
        c = self.config
        if self.info.world == 1 or not augment:
            return make_loader(
                split,
                imgsz,
                batch,
                augment=augment,
                mosaic=mosaic,
                workers=c.workers,
                seed=c.seed,
                cache=c.cache,
                hyp=c.augment,
            )
        dataset = DetectionDataset(split, imgsz, augment=True, mosaic=mosaic, hyp=c.augment, seed=c.seed, cache=c.cache)
        sampler = ShardedSampler(len(dataset), True, c.seed, mosaic, self.info.rank, self.info.world)
        return DetectionLoader(dataset, batch, sampler, c.workers, drop_last=False)

    def _mosaic_on(self, epoch: int) -> bool:
        c = self.config
        return c.mosaic and epoch < c.epochs - c.close_mosaic

    def fit(self) -> TrainResult:
        c, info = self.config, self.info
        if info.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        device = select_device(c.device, info)
        if c.threads:
            torch.set_num_threads(c.threads)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        train_split, val_split = load_split(self.data, "train"), load_split(self.data, "val")
        if train_split.nc != val_split.nc:
            raise InputError(self.data, "val", f"the train split's {train_split.nc} classes", f"{val_split.nc} classes")
        arch = self.arch
        if arch.data["nc"] != train_split.nc:
            self.log(f"train: nc {arch.data['nc']} -> {train_split.nc} (the dataset's classes)")
            arch = arch.with_overrides(nc=train_split.nc)
        self.arch = arch
        imgsz = c.imgsz or int(arch.data["imgsz"])
        if c.batch % info.world:
            raise InputError(OPTION, "batch", f"a multiple of the {info.world} processes", str(c.batch))

        if device.type == "cpu":  # host memory: weights, optimizer state, EMA and saved activations
            require(arch, batch=c.batch // info.world, imgsz=imgsz, training=True)
        torch.manual_seed(c.seed)
        model = build_model(arch).to(device)
        train_loader = self._loader(train_split, imgsz, c.batch // info.world, True, self._mosaic_on(0))
        iters_per_epoch = len(train_loader)
        distiller = None
        if c.teacher:
            distiller = Distiller(
                load_teacher(c.teacher, train_split.nc, device), c.distill_weight, c.distill_temperature
            )
        recipe = c.recipe(iters_per_epoch)
        engine = Engine.create(
            model, recipe, make_loss(model, c, distiller, info.world), c.batch, c.epochs * iters_per_epoch, device
        )
        optimizer, scaler, ema = engine.optimizer, engine.scaler, engine.ema

        start_epoch, iteration, best, best_epoch, history = 0, 0, -1.0, -1, []
        if self.resume_state is not None:
            start_epoch, iteration, best, best_epoch, history = self._restore(model, optimizer, scaler, ema)
            self.log(f"train: resuming at epoch {start_epoch + 1}/{c.epochs} from {self.out / LAST}")

        if info.world > 1:
            engine.model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        val_batch = c.val_batch or max(c.batch // info.world * 2, 1)
        if info.main:
            self.out.mkdir(parents=True, exist_ok=True)
            arch.save(self.out / "arch.yaml")
        self.log(
            f"train: {arch.name} ({arch.hash}) on {len(train_split)} train / {len(val_split)} val images, "
            f"{imgsz} px, batch {c.batch} x{engine.accumulate} accumulation, {c.epochs} epochs, {c.optimizer} "
            f"lr0 {c.initial_lr():g}, {device.type}{' AMP' if engine.amp else ''}"
            f"{f', DDP x{info.world}' if info.world > 1 else ''} -> {self.out}"
        )

        metrics: dict[str, float] = {}
        stopped = False
        epoch = start_epoch - 1
        for epoch in range(start_epoch, c.epochs):
            mosaic = self._mosaic_on(epoch)
            if train_loader.mosaic != mosaic:
                train_loader.mosaic = mosaic
                self.log(f"train: mosaic {'on' if mosaic else 'off'} from epoch {epoch + 1}")
            train_loader.set_epoch(epoch)
            t0 = time.perf_counter()
            with _Progress(self.info.main, f"epoch {epoch + 1}/{c.epochs}", iters_per_epoch, self._log) as bar:
                engine.on_batch = bar.update
                losses, iteration = engine.run(train_loader, iteration)
            train_s = time.perf_counter() - t0
            row: dict[str, Any] = {"epoch": epoch + 1}
            row.update({f"train/{k}_loss": round(v, 6) for k, v in losses.items()})
            if info.main:
                t1 = time.perf_counter()
                metrics = validate(ema.model if ema else model, val_split, imgsz, val_batch)
                row.update({"metrics/mAP50": metrics["map50"], "metrics/mAP50-95": metrics["map"]})
                row.update({f"lr/pg{i}": g["lr"] for i, g in enumerate(optimizer.param_groups)})
                row.update({"time/train_s": round(train_s, 2), "time/val_s": round(time.perf_counter() - t1, 2)})
                history.append(row)
                improved = metrics["map"] > best
                if improved:
                    best, best_epoch = metrics["map"], epoch
                state = self._state(
                    model,
                    optimizer,
                    scaler,
                    ema,
                    epoch,
                    iteration,
                    best,
                    best_epoch,
                    history,
                    metrics,
                    train_split.class_names,
                )
                write_csv(history, self.out / CSV)
                write_curve(curve_report(history, c.epochs), self.out / CURVE)
                ckpt_io.save_checkpoint(state, self.out / LAST)
                if improved:
                    ckpt_io.save_checkpoint(state, self.out / BEST)
                plot_results(history, self.out / PNG)
                self.log(
                    f"epoch {epoch + 1}/{c.epochs}: "
                    + " ".join(f"{k} {v:.4f}" for k, v in losses.items())
                    + f" | mAP50-95 {metrics['map']:.2f} mAP50 {metrics['map50']:.2f}"
                    + f" | {train_s:.1f}s{' (best)' if improved else ''}"
                )
                if self.on_epoch_end is not None:
                    self.on_epoch_end(epoch, row)
                stopped = bool(c.patience) and epoch - best_epoch >= c.patience
            if info.world > 1:
                flag = torch.tensor([int(stopped)], device=device)
                dist.broadcast(flag, 0)
                stopped = bool(flag.item())
            if stopped:
                self.log(f"train: no improvement for {c.patience} epochs, stopping after epoch {epoch + 1}")
                break
        if info.world > 1:
            dist.barrier()
            dist.destroy_process_group()
        return TrainResult(self.out, epoch + 1, best_epoch + 1, best, metrics, stopped, c.epochs, list(history))

    # -- checkpoints ----------------------------------------------------------------------------------
    def _state(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: Any,
        ema: ModelEMA | None,
        epoch: int,
        iteration: int,
        best: float,
        best_epoch: int,
        history: list[dict[str, Any]],
        metrics: dict[str, float],
        class_names: tuple[str, ...],
    ) -> dict[str, Any]:
        weights = ema.state_dict() if ema else model.state_dict()
        return {
            "arch": self.arch.data,
            "model": {k: v.detach().cpu().clone() for k, v in weights.items()},
            "train_model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "ema_updates": ema.updates if ema else 0,
            "epoch": epoch,
            "iteration": iteration,
            "best_fitness": best,
            "best_epoch": best_epoch,
            "metrics": dict(metrics),
            "history": [dict(r) for r in history],
            "train_args": {**self.config.model_dump(mode="json"), "data": self.data, "arch_source": self.arch.source},
            "class_names": list(class_names),
            "rng": ckpt_io.rng_state(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    def _restore(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any, ema: ModelEMA | None
    ) -> tuple[int, int, float, int, list[dict[str, Any]]]:
        state = self.resume_state or {}
        where = self.out / LAST
        ckpt_io.load_weights(model, ckpt_io.state_dict_of(state, "train_model", where), where, "train_model")
        if ema is not None:
            ema.load(ckpt_io.state_dict_of(state, "model", where), int(state.get("ema_updates", 0)))
        try:
            optimizer.load_state_dict(state["optimizer"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(where, "optimizer", "the optimizer state of this run", str(exc)[:120]) from None
        ckpt_io.set_rng_state(state.get("rng"))
        return (
            int(state["epoch"]) + 1,
            int(state["iteration"]),
            float(state["best_fitness"]),
            int(state.get("best_epoch", -1)),
            list(state.get("history", [])),
        )


class _Progress:
    """Progress on stderr, main process only: a rich bar in a terminal, else a line every quarter epoch."""

    def __init__(self, enabled: bool, title: str, total: int, log: Callable[[str], None] | None = None) -> None:
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.title, self.total, self.log = title, total, log
        self.every = max(total // 4, 1)
        self._bar: Any = None

    def __enter__(self) -> _Progress:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[losses]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.title, total=self.total, losses="")
        return self

    def update(self, done: int, losses: dict[str, float]) -> None:
        text = " ".join(f"{k} {v:.3f}" for k, v in losses.items())
        if self._bar is not None:
            self._bar.update(self._task, completed=done, losses=text)
        elif self.enabled and self.log is not None and done % self.every == 0 and done < self.total:
            self.log(f"{self.title}: {done}/{self.total} batches, {text}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# -- entry points used by the CLI -------------------------------------------------------------------------
def prepare_run(arch: Architecture, data: str, out: Path, config: TrainConfig) -> Trainer:
    """A new run; refuses to overwrite a directory that already holds one."""
    if (out / LAST).exists():
        raise InputError(
            out,
            "<dir>",
            "a new or empty output directory (or --resume to continue this run)",
            f"a previous run ({LAST})",
        )
    return Trainer(arch, data, out, config)


def resume_run(ckpt_path: Path, data: str | None, overrides: dict[str, Any]) -> Trainer:
    """A Trainer continuing the run of `ckpt_path` (its last.pt) with its saved settings."""
    state = ckpt_io.read_checkpoint(ckpt_path)
    arch = ckpt_io.checkpoint_arch(state, ckpt_path)
    for key in ("train_model", "optimizer", "epoch", "iteration", "best_fitness", "train_args"):
        if key not in state:
            raise InputError(ckpt_path, key, "present (a last.pt written by nasearch train)", "missing")
    args = dict(state["train_args"])
    saved_data = args.pop("data", None)
    args.pop("arch_source", None)
    config = validate_model(TrainConfig, args, f"{ckpt_path}:train_args")
    runtime = {k: v for k, v in overrides.items() if k in RUNTIME_KEYS and v is not None}
    config = config.model_copy(update=runtime)
    for key, value in overrides.items():
        if key not in RUNTIME_KEYS and value is not None and getattr(config, key) != value:
            raise InputError(
                OPTION,
                key,
                f"the run's saved value {getattr(config, key)} (or leave it out) with --resume",
                str(value),
            )
    if int(state["epoch"]) + 1 >= config.epochs:
        raise InputError(
            ckpt_path,
            "epoch",
            f"an unfinished run (fewer than {config.epochs} epochs done)",
            f"all {config.epochs} epochs done",
        )
    return Trainer(arch, data or saved_data, ckpt_path.parent, config, resume_state=state)
