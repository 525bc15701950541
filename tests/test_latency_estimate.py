"""Estimating unmeasured blocks from measured ones: per-group linear models, pooled fallback, floor."""

from __future__ import annotations

import pytest

from nasearch.latency.db import UnitRow
from nasearch.latency.estimate import POOLED, BlockEstimator, group_of


def row(kind: str, block_type: str, gflops: float, io: float, convs: float, ms: float) -> UnitRow:
    return UnitRow(
        f"{kind}-{gflops}-{io}",
        kind,
        block_type,
        ms,
        ms,
        ms,
        10,
        {"gflops": gflops, "io_melems": io, "convs": convs},
    )


def test_an_exact_linear_group_is_recovered():
    law = lambda g, io, c: 10.0 * g + 2.0 * io + 0.05 * c + 0.1  # noqa: E731
    rows = [
        row("stage", "c2f_stage", g, io, c, law(g, io, c))
        for g, io, c in [(0.5, 1, 3), (1, 0.5, 5), (2, 0.2, 9), (4, 0.1, 9), (1.5, 0.8, 7), (3, 0.3, 5)]
    ]
    est = BlockEstimator.fit(rows)
    assert est.samples == {"stage:c2f_stage": 6, POOLED: 6}
    assert est.estimate("stage", "c2f_stage", {"gflops": 2.5, "io_melems": 0.4, "convs": 7}) == pytest.approx(
        law(2.5, 0.4, 7), rel=1e-6
    )


def test_groups_keep_stage_types_apart_and_small_groups_use_the_pooled_model():
    assert group_of("stage", "c2f_stage") != group_of("stage", "yolonas_stage")
    assert group_of("neck", "v8_pan/C2f") == group_of("neck", "yolonas_pan/Up") == "neck"
    rows = [row("stage", "c2f_stage", g, 0.1, 5, 10 * g) for g in (1, 2, 3, 4, 5)]
    rows += [row("context", "sppf", 0.1, 0.05, 2, 1.0), row("context", "sppf", 0.2, 0.05, 2, 2.0)]
    est = BlockEstimator.fit(rows)
    assert "context" not in est.models and POOLED in est.models
    value = est.estimate("context", "sppf", {"gflops": 0.15, "io_melems": 0.05, "convs": 2})
    assert value > 0


def test_estimates_never_go_below_a_floor_and_need_enough_samples():
    rows = [row("head", "h", g, 0.0, 1, ms) for g, ms in [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0)]]
    est = BlockEstimator.fit(rows)
    assert est.estimate("head", "h", {"gflops": -100.0, "io_melems": 0.0, "convs": 1}) == pytest.approx(0.5)
    assert not BlockEstimator.fit(rows[:4]).can_estimate()
    with pytest.raises(ValueError):
        BlockEstimator.fit([]).estimate("head", "h", {})
