"""The timing loop shared by every backend: warm up, then time single runs until the median settles.

A run is timed by a `step` callable that returns the elapsed milliseconds of one inference (wall
clock on a CPU, CUDA events on a GPU), so the same stopping rule serves every backend.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class TimingPolicy:
    """When to stop timing: at least `min_runs`, then every `check_every` runs compare the median with
    the previous check; `stable_checks` consecutive changes below `rtol` end the loop. `max_runs` and
    `max_seconds` bound the cost (the result then says `stable: false`)."""

    warmup_runs: int = 3
    warmup_seconds: float = 0.05
    min_runs: int = 10
    max_runs: int = 400
    max_seconds: float = 30.0
    check_every: int = 5
    rtol: float = 0.01
    stable_checks: int = 2


QUICK = TimingPolicy(
    warmup_runs=1,
    warmup_seconds=0.0,
    min_runs=5,
    max_runs=30,
    max_seconds=5.0,
    check_every=5,
    rtol=0.05,
    stable_checks=1,
)


@dataclass(frozen=True)
class Timing:
    """Summary of one measurement, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    stable: bool

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(samples_ms: list[float], stable: bool) -> Timing:
    arr = np.asarray(samples_ms, dtype=np.float64)
    p10, p50, p90 = np.percentile(arr, [10, 50, 90])
    return Timing(float(p50), float(p10), float(p90), len(samples_ms), stable)


def wall_clock(fn: Callable[[], object]) -> Callable[[], float]:
    """A step that times `fn` with `time.perf_counter_ns` and returns milliseconds."""

    def step() -> float:
        start = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - start) / 1e6

    return step


def thread_cpu_clock(fn: Callable[[], object]) -> Callable[[], float]:
    """A step that times `fn` by the calling thread's CPU time, in milliseconds.

    For single-threaded inference on a CPU this equals the wall-clock latency of an otherwise idle
    machine, but it does not count the time the thread waits while other processes hold the core,
    so figures measured on a shared machine stay repeatable. Only valid when all the work runs on the
    calling thread (one intra-op thread)."""

    def step() -> float:
        start = time.thread_time_ns()
        fn()
        return (time.thread_time_ns() - start) / 1e6

    return step


CLOCKS = ("wall", "cpu")


def timer(clock: str) -> Callable[[Callable[[], object]], Callable[[], float]]:
    return {"wall": wall_clock, "cpu": thread_cpu_clock}[clock]


def measure(step: Callable[[], float], policy: TimingPolicy = TimingPolicy()) -> Timing:
    """Warm up, then time runs until the median is stable (see `TimingPolicy`)."""
    deadline = time.monotonic() + policy.warmup_seconds
    done = 0
    while done < policy.warmup_runs or time.monotonic() < deadline:
        step()
        done += 1
        if done >= 10 * max(policy.warmup_runs, 1):
            break
    samples: list[float] = []
    previous: float | None = None
    calm = 0
    stop_at = time.monotonic() + policy.max_seconds
    while len(samples) < policy.max_runs:
        samples.append(step())
        n = len(samples)
        if n < policy.min_runs or (n - policy.min_runs) % policy.check_every:
            if time.monotonic() > stop_at and n >= policy.min_runs:
                break
            continue
        median = statistics.median(samples)
        if previous is not None and abs(median - previous) <= policy.rtol * max(previous, 1e-9):
            calm += 1
            if calm >= policy.stable_checks:
                return summarize(samples, True)
        else:
            calm = 0
        previous = median
        if time.monotonic() > stop_at:
            break
    return summarize(samples, False)
