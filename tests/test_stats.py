"""The frozen evaluation protocol: estimates agree with scipy, intervals have known answers, seeds decide."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from nasearch import stats


def _tied(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, 6, n).astype(float)  # many ties
    return x, x + rng.normal(0, 2, n)


def test_estimates_are_scipys_rho_and_tau_b():
    x, y = _tied(np.random.default_rng(1), 25)
    assert stats.correlation(x, y, "spearman", resamples=10).estimate == pytest.approx(sps.spearmanr(x, y)[0])
    assert stats.correlation(x, y, "kendall", resamples=10).estimate == pytest.approx(sps.kendalltau(x, y)[0])
    rows_x, rows_y = np.stack([x, x[::-1]]), np.stack([y, y])
    np.testing.assert_allclose(
        stats.kendall_rows(rows_x, rows_y), [sps.kendalltau(x, y)[0], sps.kendalltau(x[::-1], y)[0]]
    )


@pytest.mark.parametrize("method", ["spearman", "kendall"])
def test_perfect_agreement_has_its_interval_at_one(method):
    x = np.arange(20.0)
    r = stats.correlation(x, x**3, method)
    assert (r.estimate, r.low, r.high) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0))
    assert r.n == 20 and r.resamples == stats.RESAMPLES and r.seed == stats.SEED


def test_independent_noise_intervals_contain_zero_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    hits = []
    for _ in range(60):
        r = stats.correlation(rng.normal(size=20), rng.normal(size=20), resamples=1000)
        hits.append(r.low < 0 < r.high)
    assert 0.85 <= np.mean(hits) <= 1.0
    large = stats.correlation(rng.normal(size=200), rng.normal(size=200), resamples=2000)
    assert large.low < 0 < large.high and large.high - large.low < 0.35


def test_same_seed_same_interval_other_seed_other_interval():
    x, y = _tied(np.random.default_rng(3), 30)
    a, b = stats.correlation(x, y, seed=5), stats.correlation(x, y, seed=5)
    c = stats.correlation(x, y, seed=6)
    assert (a.low, a.high) == (b.low, b.high) and (a.low, a.high) != (c.low, c.high)


def test_percentile_interval_matches_scipy_bootstrap():
    rng = np.random.default_rng(11)
    a, b = rng.normal(1.0, 1.0, 15), rng.normal(0.0, 1.0, 15)
    ours = stats.paired_difference(a, b, resamples=20_000)
    ref = sps.bootstrap((a - b,), np.mean, n_resamples=20_000, method="percentile", rng=0).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.05) and ours.high == pytest.approx(ref.high, abs=0.05)


def test_difference_verdicts():
    rng = np.random.default_rng(2)
    target = rng.normal(size=40)
    good, noise = target + rng.normal(0, 0.1, 40), rng.normal(size=40)
    assert stats.correlation_difference(target, good, noise).verdict == "beats"
    assert stats.correlation_difference(target, noise, good).verdict == "worse"
    same = stats.correlation_difference(target, good, good)
    assert (same.low, same.high, same.verdict) == (0.0, 0.0, "not shown")
    shifted = stats.paired_difference([3.0, 4.0, 5.0], [2.0, 3.0, 4.0])
    assert (shifted.estimate, shifted.low, shifted.high, shifted.verdict) == (1.0, 1.0, 1.0, "beats")
    tie = stats.paired_difference([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0])
    assert tie.verdict == "not shown" and tie.low < 0 < tie.high


def test_degenerate_resamples_are_dropped_and_counted():
    r = stats.correlation([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], resamples=2000)
    assert r.dropped > 0 and r.low == r.high == pytest.approx(1.0)  # resamples of one repeated unit


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal lengths"):
        stats.correlation([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="non-finite"):
        stats.correlation([1.0, float("nan"), 2.0], [1.0, 2.0, 3.0])
    assert stats.complete([1, None, 3], [4, 5, None]) == [[1.0], [4.0]]


def test_location_median():
    r = stats.location([10, 12, 14, 200, 11, 13, 15, 16, 17], "median")
    assert r.estimate == 14 and r.low <= 14 <= r.high and r.high < 200  # one outlier cannot move a median


def test_proportion_wilson():
    r = stats.proportion(18, 20)
    assert r.estimate == 0.9 and r.low == pytest.approx(0.699, abs=1e-3) and r.high == pytest.approx(0.972, abs=1e-3)
    assert stats.proportion(20, 20).high == 1.0 and stats.proportion(20, 20).low == pytest.approx(0.839, abs=1e-3)
