"""Calibration images for INT8: what PTQ, QAT and the INT8 export calibrate on (and export verifies with)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nasearch.data import load_split, make_loader
from nasearch.data.records import DetectionSplit
from nasearch.errors import InputError

Log = Callable[[str], None]


def calibration_batches(split: DetectionSplit, imgsz: int, images: int, seed: int = 0) -> list[np.ndarray]:
    """`images` letterboxed images ([1, 3, S, S] float32 0..1), a seeded random choice over the split."""
    rng = np.random.default_rng(seed)
    n = min(images, len(split))
    chosen = sorted(rng.choice(len(split), size=n, replace=False).tolist())
    loader = make_loader(split.subset(chosen), imgsz, 1, augment=False, mosaic=False, workers=0, shuffle=False)
    return [batch.images.numpy() for batch in loader]


def calibration_split(data: str, log: Log) -> DetectionSplit:
    """Calibrate on training images; fall back to val (said so) when the dataset has no train split."""
    try:
        return load_split(data, "train")
    except InputError as err:
        log(f"quantize: no train split ({err.line().removeprefix('error: ')}); calibrating on val images")
        return load_split(data, "val")
