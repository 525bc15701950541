"""The latency database: keys, idempotent writes, bad files, and many processes writing at once."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import time

import pytest

from nasearch.errors import InputError
from nasearch.latency.db import LatencyDB
from nasearch.latency.fingerprint import Fingerprint
from nasearch.latency.stats import Timing

FP = Fingerprint("onnxruntime", "1.0", "Test CPU", "CPUExecutionProvider", 1, "fp32", 1, "cpu")


def timing(ms: float) -> Timing:
    return Timing(ms, ms * 0.9, ms * 1.1, 20, True)


def test_units_are_keyed_by_fingerprint_and_signature(tmp_path):
    with LatencyDB(tmp_path / "lat.db") as db:
        other = Fingerprint("onnxruntime", "1.0", "Test CPU", "CPUExecutionProvider", 2, "fp32", 1, "wall")
        assert FP.id != other.id
        db.add_fingerprint(FP)
        db.add_fingerprint(other)
        assert db.put_unit(FP.id, "sig-a", "stage", "c2f_stage", {"x": 1}, timing(2.0))
        assert not db.put_unit(FP.id, "sig-a", "stage", "c2f_stage", {"x": 1}, timing(9.0))  # first one stays
        assert db.put_unit(other.id, "sig-a", "stage", "c2f_stage", {"x": 1}, timing(1.5))
        assert db.units(FP.id)["sig-a"].median_ms == 2.0
        assert db.units(other.id)["sig-a"].median_ms == 1.5
        assert db.unit_description(FP.id, "sig-a") == {"x": 1}
        features = {"gflops": 0.5, "convs": 1.0}
        assert db.put_unit(FP.id, "sig-b", "stem", "conv_stem", {}, timing(1.0), features)
        assert db.units(FP.id)["sig-b"].features == {"gflops": 0.5, "convs": 1.0}
        assert db.units(FP.id)["sig-a"].features == {}
        db.put_network(FP.id, "h1", 64, "net", {"name": "net"}, ["sig-a", "sig-a"], timing(5.0))
        db.put_network(FP.id, "h1", 64, "net", {"name": "net"}, ["sig-a", "sig-a"], timing(4.0))  # replaced
        (row,) = db.networks(FP.id)
        assert (row.median_ms, row.units) == (4.0, ["sig-a", "sig-a"])
        assert db.has_network(FP.id, "h1", 64) and not db.has_network(FP.id, "h1", 96)
        listed = {fp.id: (nu, nn) for fp, nu, nn in db.fingerprints()}
        assert listed == {FP.id: (2, 1), other.id: (1, 0)}
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_fingerprints_differ_in_every_field():
    base = FP.as_dict()
    changes = {
        "backend": "torch",
        "backend_version": "1.1",
        "device": "Other CPU",
        "provider": "CUDA",
        "threads": 4,
        "precision": "int8",
        "batch": 8,
        "clock": "wall",
        "extra": {"cuda": "12.4"},
    }
    ids = {Fingerprint(**{**base, key: value}).id for key, value in changes.items()}
    assert len(ids) == len(changes) and FP.id not in ids


def test_bad_database_files_are_input_errors(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("not a database at all")
    with pytest.raises(InputError, match="SQLite"):
        LatencyDB(text)
    with pytest.raises(InputError, match="directory"):
        LatencyDB(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        LatencyDB(tmp_path / "missing.db", create=False)
    other = tmp_path / "optuna.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE trials (id INTEGER)")
    with pytest.raises(InputError, match="other tables"):
        LatencyDB(other)
    with sqlite3.connect(other) as conn:  # untouched
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["trials"]


def _writer(path: str, worker: int, n: int, shared: int, queue) -> None:
    db = LatencyDB(path)
    db.add_fingerprint(FP)
    added = 0
    for i in range(n):
        # the first `shared` signatures are written by every worker; the rest are the worker's own
        sig = f"shared-{i}" if i < shared else f"w{worker}-{i}"
        added += db.put_unit(FP.id, sig, "stage", "c2f_stage", {"i": i, "worker": worker}, timing(1.0 + i))
        if i % 10 == 0:
            db.put_network(FP.id, f"net-{worker}-{i}", 64, "net", {}, [sig], timing(3.0))
    db.close()
    queue.put(added)


def test_concurrent_writers_lose_nothing_and_corrupt_nothing(tmp_path):
    path = str(tmp_path / "lat.db")
    workers, n, shared = 4, 60, 20
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, w, n, shared, queue)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    added = sum(queue.get(timeout=5) for _ in procs)
    expected = shared + workers * (n - shared)
    assert added == expected  # every signature was inserted exactly once over all processes
    with LatencyDB(path) as db:
        sigs = db.unit_signatures(FP.id)
        assert len(sigs) == expected
        assert {f"w{w}-{i}" for w in range(workers) for i in range(shared, n)} <= sigs
        assert len(db.networks(FP.id)) == workers * len(range(0, n, 10))
        assert db.integrity() == "ok"


def _endless_writer(path: str) -> None:
    db = LatencyDB(path)
    db.add_fingerprint(FP)
    i = 0
    while True:
        db.put_unit(FP.id, f"s{i}", "stage", "c2f_stage", {"pad": "x" * 2000}, timing(1.0))
        i += 1


def test_a_killed_writer_leaves_a_consistent_database(tmp_path):
    path = str(tmp_path / "lat.db")
    proc = mp.get_context("spawn").Process(target=_endless_writer, args=(path,))
    proc.start()
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline and count < 50:
        time.sleep(0.2)
        try:
            with sqlite3.connect(path, timeout=10) as conn:
                count = conn.execute("SELECT COUNT(*) FROM units").fetchone()[0]
        except sqlite3.OperationalError:
            count = 0
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert count >= 50
    with LatencyDB(path) as db:
        assert db.integrity() == "ok"
        sigs = db.unit_signatures(FP.id)
        assert len(sigs) >= count
        # committed rows are a gapless prefix: nothing half-written
        assert sigs == {f"s{i}" for i in range(len(sigs))}
