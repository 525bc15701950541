"""Prediction from the database: the overhead fit, fingerprint choice, missing blocks, and additivity."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasearch.errors import InputError
from nasearch.latency.backend import get_backend
from nasearch.latency.db import LatencyDB
from nasearch.latency.fingerprint import Fingerprint
from nasearch.latency.predict import fit_overhead, overhead_for, predict_from_db, select_fingerprint
from nasearch.latency.profile import plan, profile_space
from nasearch.latency.stats import QUICK
from nasearch.latency.units import arch_units
from nasearch.space import load_space
from tests.fixtures import micro_space

MICRO = micro_space(stage1="out: {choice: [16, 32]}, blocks: {choice: [1, 2]}", top=64, neck=32)


def test_the_fit_recovers_an_exact_line():
    units = [10.0, 20.0, 40.0, 80.0]
    fit = fit_overhead(units, [1.1 * u - 2.0 for u in units])
    assert fit.kind == "scale+offset" and fit.networks == 4
    assert fit.scale == pytest.approx(1.1) and fit.offset_ms == pytest.approx(-2.0)
    assert fit.max_rel_error == pytest.approx(0.0, abs=1e-9)
    assert fit.apply(100.0) == pytest.approx(108.0)


def test_the_fit_weighs_relative_errors():
    # one large network 10% off must not dominate the small ones
    units = [1.0, 2.0, 4.0, 100.0]
    measured = [1.5, 2.5, 4.5, 110.0]
    fit = fit_overhead(units, measured)
    errors = [abs(fit.apply(u) / m - 1) for u, m in zip(units, measured, strict=True)]
    assert max(errors[:3]) < 0.05


def test_few_networks_fall_back_to_an_offset_or_nothing():
    one = fit_overhead([10.0], [12.5])
    assert (one.kind, one.scale, one.offset_ms) == ("offset", 1.0, pytest.approx(2.5))
    none = fit_overhead([], [])
    assert (none.kind, none.apply(7.0)) == ("none", 7.0)
    clipped = fit_overhead([10.0, 11.0], [10.0, 100.0])
    assert clipped.scale == 1.5


@pytest.fixture(scope="module")
def micro_db(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("predict")
    space_path = root / "micro.yaml"
    space_path.write_text(MICRO)
    db_path = root / "lat.db"
    with LatencyDB(db_path) as db:
        report = profile_space(load_space(space_path), get_backend("onnxruntime", policy=QUICK), db, 64, networks=3)
    return space_path, db_path, report.fingerprint_id


def test_a_prediction_is_the_fitted_sum_of_stored_blocks(micro_db):
    space_path, db_path, fp_id = micro_db
    arch = load_space(space_path).sample(0)
    with LatencyDB(db_path) as db:
        fp = next(f for f, _, _ in db.fingerprints() if f.id == fp_id)
        doc = predict_from_db(db, fp, arch, 64)
        units = arch_units(arch, 64)[1]
        stored = db.units(fp_id)
        fit = overhead_for(db, fp_id, 64, len(units))
    total = sum(stored[u.signature].median_ms for u in units)
    assert doc["measured"] is False and doc["method"] == "blocks+overhead"
    assert doc["units"] == len(units) == 21 and doc["units_measured_now"] == 0
    assert doc["units_ms"] == pytest.approx(total, abs=1e-6)
    assert doc["predicted_ms"] == pytest.approx(fit.apply(total), abs=1e-6)
    assert fit.networks == 3 and doc["overhead"]["networks"] == 3
    assert {"target", "precision", "imgsz", "batch", "predicted_ms", "method", "measured"} <= set(doc)


def test_a_held_out_network_is_predicted_from_stored_blocks_alone(micro_db):
    """The network left out of the overhead fit is predicted without measuring anything. How close such predictions
    come to a measurement is a timing figure: `benchmarks/latency_fidelity.py` reports it on an idle machine."""
    space_path, db_path, fp_id = micro_db
    with LatencyDB(db_path) as db:
        fitted = {row.arch_hash for row in db.networks(fp_id)}
        fp = next(f for f, _, _ in db.fingerprints() if f.id == fp_id)
        (held_out,) = [a for a in plan(load_space(space_path), 64).archs if a.hash not in fitted]
        doc = predict_from_db(db, fp, held_out, 64)
        units = arch_units(held_out, 64)[1]
        stored = db.units(fp_id)
        fit = overhead_for(db, fp_id, 64, len(units))
    assert doc["units_measured_now"] == 0 and doc["measured"] is False
    assert all(u.signature in stored for u in units)
    assert doc["predicted_ms"] == pytest.approx(fit.apply(sum(stored[u.signature].median_ms for u in units)), abs=1e-6)
    assert doc["predicted_ms"] > 0


def test_missing_blocks_are_measured_estimated_or_reported(micro_db):
    space_path, db_path, fp_id = micro_db
    arch = load_space(space_path).sample(0)
    outside = arch.with_overrides(imgsz=96)  # no block of it at 96 px is stored
    distinct = len({u.signature for u in arch_units(outside, 96)[1]})
    with LatencyDB(db_path) as db:
        fp = next(f for f, _, _ in db.fingerprints() if f.id == fp_id)
        for mode in ("measure", "error"):  # measuring needs this machine's backend
            with pytest.raises(InputError, match=f"{distinct} of {distinct} distinct blocks missing"):
                predict_from_db(db, fp, outside, 96, missing=mode)
        before = db.unit_signatures(fp_id)
        est = predict_from_db(db, fp, outside, 96, missing="estimate")
        assert db.unit_signatures(fp_id) == before  # estimating writes nothing
        assert est["units_estimated"] == 21 and est["units_measured_now"] == 0
        assert est["method"] == "blocks+estimates+overhead" and est["measured"] is False
        backend = get_backend("onnxruntime", policy=QUICK)
        if backend.fingerprint().id != fp_id:
            pytest.skip("the database was profiled under another fingerprint")
        doc = predict_from_db(db, fp, outside, 96, backend)
        assert doc["units_measured_now"] == distinct and doc["units_estimated"] == 0
        again = predict_from_db(db, fp, outside, 96, backend)
        small = predict_from_db(db, fp, arch, 64)
    assert again["units_measured_now"] == 0
    assert again["units_ms"] == doc["units_ms"]
    assert again["units_ms"] > small["units_ms"]  # 2.25× the pixels
    assert est["units_ms"] > small["units_ms"]


def test_the_fingerprint_is_this_machine_or_the_only_match(tmp_path):
    local = Fingerprint("onnxruntime", "1", "CPU A", "CPUExecutionProvider", 1, "fp32", 1, "cpu")
    t4 = Fingerprint("tensorrt", "10.3", "Tesla T4", "cuda", 1, "fp16", 1, "cuda-events")
    other = Fingerprint("onnxruntime", "1", "CPU B", "CPUExecutionProvider", 4, "fp32", 1, "wall")
    with LatencyDB(tmp_path / "lat.db") as db:
        with pytest.raises(InputError, match="profile"):
            select_fingerprint(db, local, "fp32", 1)
        db.add_fingerprint(t4)
        assert select_fingerprint(db, local, "fp16", 1) == t4
        with pytest.raises(InputError, match="fp32"):
            select_fingerprint(db, local, "fp32", 1)
        db.add_fingerprint(other)
        assert select_fingerprint(db, local, "fp32", 1) == other
        db.add_fingerprint(local)
        assert select_fingerprint(db, local, "fp32", 1) == local
        with pytest.raises(InputError, match="2 matches"):
            select_fingerprint(db, None, "fp32", 1)
        assert select_fingerprint(db, None, "fp32", 1, threads=4) == other
