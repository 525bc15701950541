"""The frozen evaluation protocol: rank correlations and paired differences with bootstrap 95% intervals.

Every figure that ranks, compares or claims "beats" goes through this module (the benchmarks, the search's
reports, the notebooks), so one protocol decides them all:
- the unit resampled is the independent one: architectures for a correlation, seeds for a per-seed metric;
- percentile bootstrap, RESAMPLES resamples with replacement from `numpy.random.default_rng(seed)`; the seed
  and the number of resamples are part of every result;
- a paired difference resamples the same units for both sides (the same architectures for two correlations
  against one target; the same seeds for two samplers);
- the verdict is "beats" only when the whole interval of the difference lies above zero, "worse" when it lies
  below, and "not shown" otherwise — a point estimate alone never decides.
Resamples in which a statistic is undefined (e.g. every drawn architecture has the same score) are dropped
and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import binomtest, rankdata

PROTOCOL_VERSION = 1
RESAMPLES = 10_000
CONFIDENCE = 0.95
SEED = 12345
CHUNK = 500  # resamples per vectorized block (bounds memory for Kendall's n x n sign matrices)

Method = Literal["spearman", "kendall"]
Verdict = Literal["beats", "worse", "not shown"]
ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Interval:
    """A statistic on the full sample and its bootstrap interval."""

    statistic: str
    estimate: float
    low: float
    high: float
    n: int
    confidence: float
    resamples: int
    dropped: int
    seed: int
    protocol: int = PROTOCOL_VERSION

    @property
    def verdict(self) -> Verdict:
        """For a difference: "beats" when the interval excludes zero from above."""
        if self.low > 0:
            return "beats"
        if self.high < 0:
            return "worse"
        return "not shown"

    def as_dict(self, digits: int = 4) -> dict[str, Any]:
        d = asdict(self)
        for k in ("estimate", "low", "high"):
            d[k] = round(d[k], digits)
        d["verdict"] = self.verdict
        return d

    def text(self, digits: int = 3) -> str:
        """`0.864 [0.71, 0.95]` — the form every README figure uses."""
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of [B, n] arrays (average ranks for ties), as scipy.stats.spearmanr."""
    return _pearson_rows(rankdata(x, axis=1), rankdata(y, axis=1))


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of [B, n] arrays, as scipy.stats.kendalltau."""
    sx = np.sign(x[:, :, None] - x[:, None, :])
    sy = np.sign(y[:, :, None] - y[:, None, :])
    den = np.sqrt((sx * sx).sum(axis=(1, 2)) * (sy * sy).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (sx * sy).sum(axis=(1, 2)) / np.where(den > 0, den, 1.0), np.nan)


ROWS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"spearman": spearman_rows, "kendall": kendall_rows}


def _columns(*values: ArrayLike) -> list[np.ndarray]:
    cols = [np.asarray(v, dtype=np.float64) for v in values]
    n = len(cols[0])
    if any(c.ndim != 1 or len(c) != n for c in cols):
        raise ValueError(f"paired samples need equal lengths, got {[len(c) for c in cols]}")
    if any(not np.isfinite(c).all() for c in cols):
        raise ValueError("missing or non-finite values: keep only complete units before calling")
    return cols


def bootstrap(
    statistic: Callable[..., np.ndarray],
    *values: ArrayLike,
    name: str,
    seed: int = SEED,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile bootstrap of `statistic` over paired units.

    `statistic(*rows)` receives one [B, n] array per input (row b = resample b of the units, the same
    indices for every input) and returns B values (NaN where undefined).
    """
    cols = _columns(*values)
    n = len(cols[0])
    if n < 2:
        raise ValueError(f"a bootstrap needs at least 2 units, got {n}")
    estimate = float(statistic(*(c[None, :] for c in cols))[0])
    rng = np.random.default_rng(seed)
    draws: list[np.ndarray] = []
    for start in range(0, resamples, CHUNK):
        idx = rng.integers(0, n, size=(min(CHUNK, resamples - start), n))
        draws.append(statistic(*(c[idx] for c in cols)))
    stats = np.concatenate(draws)
    ok = stats[np.isfinite(stats)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ok, [alpha, 1 - alpha]) if len(ok) else (np.nan, np.nan)
    return Interval(
        statistic=name,
        estimate=estimate,
        low=float(low),
        high=float(high),
        n=n,
        confidence=confidence,
        resamples=resamples,
        dropped=int(len(stats) - len(ok)),
        seed=seed,
    )


def correlation(
    x: ArrayLike, y: ArrayLike, method: Method = "spearman", seed: int = SEED, resamples: int = RESAMPLES
) -> Interval:
    """Rank correlation of x with y and its interval, resampling the (x, y) pairs."""
    return bootstrap(ROWS[method], x, y, name=method, seed=seed, resamples=resamples)


def correlation_difference(
    target: ArrayLike,
    a: ArrayLike,
    b: ArrayLike,
    method: Method = "spearman",
    seed: int = SEED,
    resamples: int = RESAMPLES,
) -> Interval:
    """corr(a, target) − corr(b, target) on the same resampled units: does signal a rank the target better?"""
    rows = ROWS[method]
    return bootstrap(
        lambda t, x, z: rows(x, t) - rows(z, t),
        target,
        a,
        b,
        name=f"{method} difference",
        seed=seed,
        resamples=resamples,
    )


def paired_difference(a: ArrayLike, b: ArrayLike, seed: int = SEED, resamples: int = RESAMPLES) -> Interval:
    """Mean of a_i − b_i over paired units (e.g. the same search seeds): is a better than b?"""
    return bootstrap(
        lambda x, z: (x - z).mean(axis=1), a, b, name="mean paired difference", seed=seed, resamples=resamples
    )


def location(
    values: ArrayLike, statistic: Literal["mean", "median"] = "median", seed: int = SEED, resamples: int = RESAMPLES
) -> Interval:
    """The mean or median of one sample (e.g. trials to reach a hypervolume, over seeds) and its interval."""
    fn = {"mean": lambda x: x.mean(axis=1), "median": lambda x: np.median(x, axis=1)}[statistic]
    return bootstrap(fn, values, name=statistic, seed=seed, resamples=resamples)


def proportion(hits: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """A share of n independent units (e.g. architectures predicted within ±5%) with its Wilson interval."""
    ci = binomtest(hits, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(
        statistic="proportion (Wilson)",
        estimate=hits / n,
        low=float(ci.low),
        high=float(ci.high),
        n=n,
        confidence=confidence,
        resamples=0,
        dropped=0,
        seed=0,
    )


def complete(*columns: Sequence[float | None]) -> list[list[float]]:
    """The units where every column has a value (the protocol drops incomplete units, never imputes)."""
    keep = [i for i in range(len(columns[0])) if all(c[i] is not None for c in columns)]
    return [[float(c[i]) for i in keep] for c in columns]  # type: ignore[arg-type]
