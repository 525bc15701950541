"""The latency screen: candidates whose predicted latency is clearly over the limit are not measured.

Most of a small space's candidates can be over a tight latency limit; measuring and scoring each of them
spends the trial budget where no answer can be. Before a candidate is measured, its latency is predicted
from the latency database (when the experiment names one: blocks plus overhead, missing blocks estimated,
nothing measured) or else from a robust fit on the candidates measured so far in this study,
`ms = c + a·GFLOPs + b·convolutions` (the fused model; Huber loss on relative errors, non-negative
coefficients: compute plus a per-layer overhead). The candidate is skipped only when the prediction is over
`limit × (1 + margin)`, with the margin learned from how far the predictor over-predicted the measured
candidates (leave-one-out for the fit: 1.5 × the 90th percentile) so a feasible candidate is not lost to a
prediction error. A skipped candidate is told infeasible with the predicted excess (labelled predicted), so
the sampler learns from it; every candidate that passes is measured as before, and its measurement is the
objective.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.optimize import nnls
from torch import nn

MAX_HISTORY = 200  # the most recent measured candidates the fit uses (leave-one-out is O(n) fits)
SAFETY = 1.5  # the margin is this many times the over-prediction the predictor rarely exceeds …
RARELY = 0.9  # … its 90th percentile over the measured candidates (one noisy measurement does not set it)
HUBER = 0.05  # relative errors beyond this weigh less in the fit (robust to a few odd measurements)
IRLS_STEPS = 8


@dataclass(frozen=True)
class Measured:
    """An earlier candidate of this study: its size, its measured latency, what the screen predicted."""

    gflops: float
    convs: int
    ms: float
    predicted_ms: float | None = None
    predicted_method: str = ""


@runtime_checkable
class LatencyHistory(Protocol):
    def measured(self) -> list[Measured]: ...


@dataclass(frozen=True)
class Verdict:
    """What the screen decided for one candidate (`skip` only when the prediction is clearly over)."""

    skip: bool
    predicted_ms: float | None
    method: str
    n: int  # measured candidates the prediction and the margin rest on
    margin: float | None
    limit_ms: float

    @property
    def reason(self) -> str:
        assert self.predicted_ms is not None and self.margin is not None
        return (
            f"latency screen: predicted {self.predicted_ms:.3f} ms ({self.method}, n = {self.n}) is over "
            f"the {self.limit_ms:g} ms limit × (1 + margin {self.margin:.2f})"
        )

    def doc(self) -> dict:
        return {
            "predicted_ms": self.predicted_ms,
            "method": self.method,
            "n": self.n,
            "margin": self.margin,
            "limit_ms": self.limit_ms,
            "skip": self.skip,
        }


def conv_count(fused: nn.Module) -> int:
    """Convolutions of the deploy form: the per-layer overhead term of the fit."""
    return sum(1 for m in fused.modules() if isinstance(m, nn.Conv2d))


class OnlineFit:
    """`ms = c + a·GFLOPs + b·convs`, robust (Huber on relative errors), coefficients >= 0."""

    def __init__(self, coef: np.ndarray) -> None:
        self.coef = coef

    @staticmethod
    def _design(points: Sequence[Measured]) -> np.ndarray:
        return np.array([[1.0, p.gflops, float(p.convs)] for p in points])

    @classmethod
    def fit(cls, points: Sequence[Measured]) -> OnlineFit:
        """Iteratively reweighted non-negative least squares on relative errors, Huber weights (5%)."""
        x = cls._design(points)
        y = np.array([p.ms for p in points])
        w = np.ones_like(y)
        coef = np.zeros(3)
        for _ in range(IRLS_STEPS):
            scale = np.sqrt(w) / y
            coef, _ = nnls(x * scale[:, None], y * scale)
            rel = np.abs(x @ coef - y) / y
            w = np.minimum(1.0, HUBER / np.maximum(rel, 1e-12))
        return cls(coef)

    def predict(self, gflops: float, convs: int) -> float:
        return float(self.coef @ np.array([1.0, gflops, float(convs)]))

    @property
    def method(self) -> str:
        c, a, b = self.coef
        return f"online fit {c:.3g} + {a:.3g}·GFLOPs + {b:.3g}·convs ms"


def loo_overprediction(points: Sequence[Measured]) -> list[float]:
    """How much the fit over-predicted each measured candidate when fitted without it (pred/true − 1)."""
    out = []
    for i, p in enumerate(points):
        fit = OnlineFit.fit([q for j, q in enumerate(points) if j != i])
        out.append(fit.predict(p.gflops, p.convs) / p.ms - 1.0)
    return out


def learned_margin(overpredictions: Sequence[float], floor: float) -> float:
    return max(floor, SAFETY * float(np.quantile(overpredictions, RARELY)))


def decide(
    limit_ms: float,
    gflops: float,
    convs: int,
    history: Sequence[Measured],
    min_history: int,
    min_margin: float,
    max_margin: float,
    db: tuple[float, str] | None = None,
) -> Verdict:
    """Predict the candidate's latency and whether it is clearly over the limit.

    With a database, the margin comes from the database's errors on the measured candidates; without, from
    the online fit's leave-one-out errors. Too little history, or a margin over `max_margin` (a predictor
    too poor to trust), means nothing is skipped."""
    points = [p for p in history if p.ms > 0 and math.isfinite(p.ms)][-MAX_HISTORY:]
    if db is not None:  # (predicted ms, method) from the latency database
        predicted, method = db
        checked = [p for p in points if p.predicted_ms is not None and p.predicted_method.startswith("database")]
        over = [p.predicted_ms / p.ms - 1.0 for p in checked]  # type: ignore[operator]
        n = len(checked)
    elif len(points) >= min_history:
        fit = OnlineFit.fit(points)
        predicted, method = fit.predict(gflops, convs), fit.method
        over, n = loo_overprediction(points), len(points)
    else:
        return Verdict(False, None, "no prediction yet", len(points), None, limit_ms)
    if n < min_history:
        return Verdict(False, predicted, method, n, None, limit_ms)
    margin = learned_margin(over, min_margin)
    skip = margin <= max_margin and predicted > limit_ms * (1.0 + margin)
    return Verdict(skip, predicted, method, n, margin, limit_ms)
