"""Estimating blocks the database has not measured, from the blocks it has.

Per group of similar blocks (each stage type apart; stems, context blocks, neck parts, head parts and
decodings each together), latency ≈ a·GFLOPs + b·(input+output elements) + c·convs + d, fitted by
least squares on relative errors over the measured blocks of the same fingerprint. Single blocks are
off by a few percent to some tens of percent, but over the ~15 blocks of a network the errors mostly
cancel: on the main space at 320 px this predicted 20 unseen architectures within ±10% without
measuring anything (see the fidelity benchmark). Every estimate is a prediction, never a measurement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from nasearch.latency.db import UnitRow

FEATURES = ("gflops", "io_melems", "convs")
MIN_SAMPLES = 5
POOLED = "*"


def group_of(kind: str, block_type: str) -> str:
    return f"stage:{block_type}" if kind == "stage" else kind


def _vector(features: dict[str, float]) -> np.ndarray:
    return np.array([float(features.get(name, 0.0)) for name in FEATURES] + [1.0])


def _fit(rows: list[UnitRow]) -> np.ndarray:
    x = np.stack([_vector(r.features) for r in rows])
    y = np.array([r.median_ms for r in rows])
    w = 1.0 / np.maximum(y, 1e-6)
    coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    return coef


@dataclass
class BlockEstimator:
    """Linear latency models per block group, with a pooled model for groups with too few samples."""

    models: dict[str, np.ndarray] = field(default_factory=dict)
    floor_ms: float = 1e-3
    samples: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, rows: Iterable[UnitRow]) -> BlockEstimator:
        usable = [r for r in rows if r.features and r.median_ms > 0]
        groups: dict[str, list[UnitRow]] = {}
        for r in usable:
            groups.setdefault(group_of(r.kind, r.block_type), []).append(r)
        est = cls()
        for name, members in groups.items():
            if len(members) >= MIN_SAMPLES:
                est.models[name] = _fit(members)
                est.samples[name] = len(members)
        if len(usable) >= MIN_SAMPLES:
            est.models[POOLED] = _fit(usable)
            est.samples[POOLED] = len(usable)
        if usable:
            est.floor_ms = 0.5 * min(r.median_ms for r in usable)
        return est

    def can_estimate(self) -> bool:
        return POOLED in self.models

    def estimate(self, kind: str, block_type: str, features: dict[str, float]) -> float:
        """Predicted milliseconds of one block (its group's model, else the pooled one)."""
        coef = self.models.get(group_of(kind, block_type), self.models.get(POOLED))
        if coef is None:
            raise ValueError("no measured blocks to estimate from")
        return max(float(_vector(features) @ coef), self.floor_ms)
