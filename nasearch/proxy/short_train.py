"""Short-training proxy mAP: train a fresh model on a small budget, then measure COCO mAP on val.

Budget = training images (a seeded subset of the train split, the same subset for every architecture at a
given seed), epochs (passes over that subset; images seen = images × epochs), resolution (`imgsz`), batch.
The recipe is the project's short training loop (`nasearch.train.short.train_steps`: AdamW, warm-up then
cosine decay, mosaic augmentation) and its COCO evaluation (`nasearch.eval.evaluate_model`) on the first
`val_images` images of the val split; the head gets the dataset's classes whatever `nc` says (as in
`nasearch train`). Deterministic on the CPU for a seed: the initialisation, the subset, the augmentation
and the batch order all derive from it. Returns mAP50-95 (value) and mAP50 in percent points.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nasearch.data import DetectionSplit, load_split, make_loader
from nasearch.errors import OPTION, InputError
from nasearch.eval import evaluate_model
from nasearch.proxy.result import ProxyResult
from nasearch.proxy.zero_cost import check_budget, fresh_model, resolve_imgsz
from nasearch.space import Architecture
from nasearch.space.memory import require
from nasearch.train.short import train_steps

DEFAULT_LR = 2e-3


@dataclass(frozen=True)
class Budget:
    """How much training a proxy evaluation may spend."""

    images: int = 256
    epochs: int = 4
    batch: int = 16
    val_images: int = 64
    lr: float = DEFAULT_LR

    @property
    def images_seen(self) -> int:
        return self.images * self.epochs


def train_subset(split: DetectionSplit, images: int, seed: int) -> DetectionSplit:
    """`images` train images chosen by the seed (all of them when the split is smaller)."""
    if images >= len(split):
        return split
    picked = sorted(random.Random(seed).sample(range(len(split)), images))
    return split.subset(picked)


def _check_lr(lr: float) -> float:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= 1:
        raise InputError("--budget", "lr", "a learning rate in (0, 1]", repr(lr))
    return float(lr)


def short_train_map(
    arch: Architecture,
    imgsz: int | None = None,
    data: str | Path | None = None,
    seed: int = 0,
    nc: int | None = None,
    images: int = Budget.images,
    epochs: int = Budget.epochs,
    batch: int = Budget.batch,
    val_images: int = Budget.val_images,
    lr: float = DEFAULT_LR,
) -> ProxyResult:
    """Train for `images` × `epochs` images at `imgsz`, return val mAP50-95 in percent points."""
    start = time.perf_counter()
    if data is None:
        raise InputError(OPTION, "data", "a dataset to train on (directory, data.yaml or COCO json)", "none")
    size = resolve_imgsz(arch, imgsz)
    budget = Budget(
        check_budget("images", images, 1),
        check_budget("epochs", epochs, 1, 10_000),
        check_budget("batch", batch, 1, 1024),
        check_budget("val_images", val_images, 1),
        _check_lr(lr),
    )
    train_split, val_split = load_split(data, "train"), load_split(data, "val")
    subset = train_subset(train_split, budget.images, seed)
    val = val_split.head(budget.val_images)
    arch = arch.with_overrides(nc=train_split.nc)
    require(arch, batch=budget.batch, imgsz=size, training=True)
    model = fresh_model(arch, seed)
    loader = make_loader(
        subset,
        size,
        budget.batch,
        augment=True,
        mosaic=True,
        workers=0,
        seed=seed,
        cache=True,
        drop_last=len(subset) > budget.batch,
    )
    with torch.random.fork_rng(devices=[]):
        history = train_steps(model, loader, epochs=budget.epochs, lr=budget.lr, seed=seed)
    result = evaluate_model(model, val, imgsz=size, batch=max(budget.batch, 16))
    details = {
        "map50": round(result.map50, 4),
        "imgsz": size,
        "train_images": len(subset),
        "epochs": budget.epochs,
        "images_seen": history.images,
        "steps": history.steps,
        "batch": budget.batch,
        "lr": budget.lr,
        "val_images": result.images,
        "final_loss": round(history.mean_loss(), 4),
        "train_seconds": round(history.seconds, 2),
        "eval_seconds": round(result.seconds, 2),
        "nc": train_split.nc,
    }
    if nc is not None and nc != train_split.nc:
        details["nc_requested"] = nc  # the head always gets the dataset's classes, as in `nasearch train`
    return ProxyResult(float(result.map), "map50_95", True, time.perf_counter() - start, details)
