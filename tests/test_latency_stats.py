"""The timing loop: stopping rules, robust statistics, the CPU clock, and stable medians on a fixed model."""

from __future__ import annotations

import itertools
import time

import pytest
import torch
from torch import nn

from nasearch.latency.stats import TimingPolicy, measure, thread_cpu_clock, wall_clock

POLICY = TimingPolicy(
    warmup_runs=2,
    warmup_seconds=0.0,
    min_runs=10,
    max_runs=200,
    max_seconds=30.0,
    check_every=5,
    rtol=0.01,
    stable_checks=2,
)


def test_constant_step_stops_as_soon_as_two_checks_agree():
    calls = itertools.count()
    timing = measure(lambda: (next(calls), 2.0)[1], POLICY)
    assert timing.stable
    assert timing.median_ms == timing.p10_ms == timing.p90_ms == 2.0
    # checks at 10 (first median), 15 and 20 (two calm checks): 20 timed runs after 2 warm-up runs
    assert timing.runs == 20
    assert next(calls) == 22


def test_outliers_do_not_move_the_median():
    values = itertools.cycle([1.0] * 9 + [50.0])
    timing = measure(lambda: next(values), POLICY)
    assert timing.median_ms == 1.0
    assert timing.p10_ms == 1.0
    assert timing.p90_ms <= 50.0


def test_a_drifting_step_is_not_stable_and_stops_at_max_runs():
    counter = itertools.count(1)
    timing = measure(
        lambda: float(next(counter)),
        TimingPolicy(warmup_runs=0, warmup_seconds=0.0, min_runs=5, max_runs=40, max_seconds=30.0),
    )
    assert not timing.stable
    assert timing.runs == 40
    assert timing.p10_ms < timing.median_ms < timing.p90_ms


def test_max_seconds_bounds_the_cost():
    counter = itertools.count(1)

    def slow_drift() -> float:
        time.sleep(0.005)
        return float(next(counter))

    start = time.monotonic()
    timing = measure(
        slow_drift,
        TimingPolicy(warmup_runs=0, warmup_seconds=0.0, min_runs=5, max_runs=10_000, max_seconds=0.3),
    )
    assert not timing.stable
    assert 5 <= timing.runs < 200
    assert time.monotonic() - start < 3.0


def test_thread_cpu_clock_ignores_waiting_but_wall_clock_counts_it():
    wall = wall_clock(lambda: time.sleep(0.05))()
    cpu = thread_cpu_clock(lambda: time.sleep(0.05))()
    assert wall >= 49.0
    assert cpu < 5.0
    busy = thread_cpu_clock(lambda: sum(i * i for i in range(300_000)))()
    assert busy > 1.0


def test_onnxruntime_median_is_stable_on_a_fixed_model():
    from nasearch.latency.onnxrt import OnnxRuntimeBackend

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, 2, 1),
        nn.SiLU(),
        nn.Conv2d(32, 64, 3, 2, 1),
        nn.SiLU(),
        nn.Conv2d(64, 64, 3, 1, 1),
    ).eval()
    x = torch.rand(1, 3, 128, 128)
    backend = OnnxRuntimeBackend(policy=TimingPolicy(min_runs=20, max_runs=400, rtol=0.02))
    assert backend.clock == "cpu"
    first = backend.time_module(model, [x], ["x"], ["y"])
    second = backend.time_module(model, [x], ["x"], ["y"])
    for t in (first, second):
        assert t.runs >= 20
        assert 0 < t.p10_ms <= t.median_ms <= t.p90_ms
    assert second.median_ms == pytest.approx(first.median_ms, rel=0.25)
