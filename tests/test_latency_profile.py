"""Profiling a space into the database: every signature once, resumable after a kill, stated coverage."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nasearch.latency.backend import get_backend
from nasearch.latency.db import LatencyDB
from nasearch.latency.profile import coverage, plan, profile_space, spread
from nasearch.latency.stats import QUICK
from nasearch.latency.units import arch_units
from nasearch.space import load_space
from tests.conftest import ROOT
from tests.fixtures import micro_space

MICRO = micro_space(stage1="out: {choice: [16, 24]}, blocks: 1")


@pytest.fixture(scope="module")
def micro_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "micro.yaml"
    path.write_text(MICRO)
    return path


def _distinct_signatures(space_path: Path, imgsz: int) -> set[str]:
    space = load_space(space_path)
    the_plan = plan(space, imgsz)
    return the_plan.signatures


def test_small_spaces_are_enumerated(micro_path):
    the_plan = plan(load_space(micro_path), 64)
    assert the_plan.exhaustive and len(the_plan.archs) == 2
    # the two architectures differ in stage 1's width: stem and stage 0 are shared, the rest is not
    a, b = (the_plan.units[x.hash] for x in the_plan.archs)
    assert a[0].signature == b[0].signature and a[1].signature == b[1].signature
    assert a[2].signature != b[2].signature
    assert len(the_plan.signatures) == len({u.signature for u in a} | {u.signature for u in b})


def test_large_spaces_are_sampled_with_a_stated_coverage(tmp_path, tiny_space_path):
    space = load_space(tiny_space_path)
    the_plan = plan(space, 64, max_archs=3)
    assert not the_plan.exhaustive and len(the_plan.archs) == 3
    assert the_plan.cardinality == space.cardinality() > 3
    with LatencyDB(tmp_path / "lat.db") as db:
        share, how = coverage(space, db, "no-such-fingerprint", 64, 1, exhaustive=False, samples=5)
    assert share == 0.0 and "held-out" in how


def test_spread_picks_smallest_largest_and_between():
    class A:
        def __init__(self, h: str) -> None:
            self.hash = h

    archs = [A(str(i)) for i in range(10)]
    sizes = {str(i): float(i) for i in range(10)}
    assert [a.hash for a in spread(archs, sizes, 3)] == ["0", "4", "9"]  # type: ignore[arg-type]
    assert len(spread(archs, sizes, 20)) == 10  # type: ignore[arg-type]
    assert spread(archs, sizes, 0) == []  # type: ignore[arg-type]


def _count(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=10) as conn:
            return conn.execute("SELECT COUNT(*) FROM units").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, micro_path):
    """A CLI profile killed mid-way (SIGKILL), then resumed in-process.
    Returns (db path, units stored at the kill, integrity after the kill, report of the resumed run)."""
    db_path = tmp_path_factory.mktemp("db") / "lat.db"
    cmd = [
        sys.executable,
        "-m",
        "nasearch.cli.main",
        "latency",
        "profile",
        str(micro_path),
        "--db",
        str(db_path),
        "--quick",
        "--networks",
        "2",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and _count(db_path) < 4 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = _count(db_path)
    with LatencyDB(db_path) as db:
        integrity = db.integrity()
        report = profile_space(load_space(micro_path), get_backend("onnxruntime", policy=QUICK), db, 64, networks=2)
    return db_path, stored, integrity, report


def test_an_interrupted_profile_resumes_where_it_stopped(resumed, micro_path):
    _, stored, integrity, report = resumed
    total = len(_distinct_signatures(micro_path, 64))
    assert integrity == "ok"
    assert 4 <= stored < total, "the kill should land mid-profile"
    assert report.already_in_db == stored
    assert report.measured_now == total - stored
    assert report.signatures == total and report.coverage == 1.0
    assert report.networks_in_db == 2


def test_profile_stores_every_signature_once_and_a_rerun_measures_nothing(resumed, micro_path):
    db_path, _, _, report = resumed
    with LatencyDB(db_path) as db:
        assert db.unit_signatures(report.fingerprint_id) == _distinct_signatures(micro_path, 64)
        rows = db.units(report.fingerprint_id)
        assert all(r.median_ms > 0 and r.runs >= QUICK.min_runs for r in rows.values())
        again = profile_space(load_space(micro_path), get_backend("onnxruntime", policy=QUICK), db, 64, networks=2)
    assert again.measured_now == 0 and again.networks_measured_now == 0
    assert again.already_in_db == report.signatures


def test_each_network_stores_the_signatures_it_is_made_of(resumed, micro_path):
    db_path, _, _, report = resumed
    space = load_space(micro_path)
    with LatencyDB(db_path) as db:
        rows = db.networks(report.fingerprint_id)
    assert len(rows) == 2
    for row in rows:
        arch = next(a for a in plan(space, 64).archs if a.hash == row.arch_hash)
        assert row.units == [u.signature for u in arch_units(arch, 64)[1]]
        assert row.median_ms > 0
