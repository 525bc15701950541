"""`nasearch train ARCH --data DATA [--epochs N] [--imgsz N] [--batch N] [--out DIR] [--resume]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from nasearch import yamlio
from nasearch.cli.common import emit_json, guarded, log
from nasearch.errors import InputError
from nasearch.validation import validate_model


def _config(cfg: str | None, flags: dict[str, Any]):
    from nasearch.train.trainer import TrainConfig

    base: dict[str, Any] = dict(yamlio.load_mapping(cfg)) if cfg else {}
    base.update({k: v for k, v in flags.items() if v is not None})
    return validate_model(TrainConfig, base, cfg or "<flags>")


def _resume_checkpoint(arch: str, out: str | None) -> Path:
    """--resume continues ARCH if it is a checkpoint, else OUT/last.pt."""
    from nasearch.train.trainer import LAST

    if arch.endswith(".pt"):
        return Path(arch)
    if out is None:
        raise InputError("--out", "out", "the directory of the run to resume (or the run's last.pt as ARCH)", "nothing")
    path = Path(out) / LAST
    if not path.exists():
        raise InputError(out, LAST, "a run to resume (its last.pt)", "no last.pt in the directory")
    return path


def train(
    arch: str = typer.Argument(..., help="Architecture YAML or preset name (or a run's last.pt with --resume)."),
    data: str | None = typer.Option(None, "--data", help="Dataset directory, data.yaml or COCO json."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default 100)."),
    imgsz: int | None = typer.Option(
        None, "--imgsz", help="Training and validation size (default: the architecture's)."
    ),
    batch: int | None = typer.Option(None, "--batch", help="Total batch size over all GPUs (default 16)."),
    out: str | None = typer.Option(None, "--out", help="Run directory (default runs/train/NAME)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out (or ARCH=last.pt) exactly."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    workers: int | None = typer.Option(None, "--workers", help="Data-loading processes (default 2)."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for torch (default: torch's; 1 is fastest on a busy shared CPU)."
    ),
    optimizer: str | None = typer.Option(None, "--optimizer", help="sgd or adamw."),
    lr0: float | None = typer.Option(None, "--lr0", help="Initial learning rate."),
    schedule: str | None = typer.Option(None, "--schedule", help="linear or cosine decay after warm-up."),
    close_mosaic: int | None = typer.Option(None, "--close-mosaic", help="Last epochs without mosaic (default 10)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of initial weights and augmentation."),
    patience: int | None = typer.Option(None, "--patience", help="Stop after N epochs without a better mAP."),
    teacher: str | None = typer.Option(None, "--teacher", help="Checkpoint to distil from."),
    distill_weight: float | None = typer.Option(
        None, "--distill-weight", help="Weight of the distillation loss (default 1)."
    ),
    cfg: str | None = typer.Option(None, "--cfg", help="YAML of further training settings (TrainConfig)."),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON document when done (with the validation curve and its plateau test)."
    ),
) -> None:
    """Train an architecture: SGD/AdamW, warm-up + decay, EMA, mosaic, per-epoch COCO mAP and checkpoints."""
    from nasearch.space import load_arch
    from nasearch.space.memory import check_loader_workers
    from nasearch.train.trainer import prepare_run, resume_run

    check_loader_workers(workers)
    flags = {
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": device,
        "workers": workers,
        "threads": threads,
        "optimizer": optimizer,
        "lr0": lr0,
        "schedule": schedule,
        "close_mosaic": close_mosaic,
        "seed": seed,
        "patience": patience,
        "teacher": teacher,
        "distill_weight": distill_weight,
    }
    if resume:
        if cfg:
            raise InputError("--cfg", "cfg", "no settings file with --resume (the run's are used)", cfg)
        trainer = resume_run(_resume_checkpoint(arch, out), data, flags)
        if not arch.endswith(".pt"):
            given = load_arch(arch).with_overrides(nc=trainer.arch.data["nc"])
            if given.hash != trainer.arch.hash:
                raise InputError(
                    arch,
                    "<root>",
                    f"the architecture of the run being resumed ({trainer.arch.name})",
                    f"another architecture ({given.name})",
                )
    else:
        if arch.endswith(".pt"):
            raise InputError(
                arch, "<file>", "an architecture YAML or preset (a checkpoint only with --resume)", "a checkpoint"
            )
        if data is None:
            raise InputError("--data", "data", "a dataset directory, data.yaml or COCO json", "nothing")
        architecture = load_arch(arch)
        config = _config(cfg, flags)
        run_dir = Path(out) if out else Path("runs") / "train" / architecture.name
        trainer = prepare_run(architecture, data, run_dir, config)
    result = trainer.fit()
    curve = result.curve()
    final = f", final {curve['final_map']:.2f}" if curve["final_map"] is not None else ""
    log(
        f"train: done, {result.epochs} epochs, best mAP50-95 {result.best_fitness:.2f} at epoch "
        f"{result.best_epoch}{final}; {curve['plateau']['text']} -> {result.out}"
    )
    if json_out:
        emit_json(result.as_dict())


def attach(app: typer.Typer) -> None:
    app.command("train")(guarded(train))
