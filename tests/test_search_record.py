"""The trial record (`nasearch.search.record`): every attribute round-trips, studies written before the record
existed are read, malformed attributes are named (exit 2), and nothing else in nasearch touches attributes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from nasearch.cli.common import as_flag
from nasearch.cli.main import app
from nasearch.errors import InputError
from nasearch.search import record
from nasearch.search.candidate import DictRecorder
from nasearch.search.executors import failed_count
from nasearch.search.record import RECORD_VERSION, TrialRecord, TrialRecorder, records
from nasearch.search.results import collect
from nasearch.search.resume import interrupted_count, recover_interrupted
from nasearch.search.storage import open_storage
from nasearch.search.study import RunInfo, StorageBoard
from nasearch.validation import check_imgsz, check_positive
from tests.conftest import ROOT

runner = CliRunner()

RUNG0 = {
    "rung": 0,
    "proxy": "flops",
    "budget": {},
    "accuracy": 0.0109,
    "kind": "gflops",
    "seconds": 0.08,
    "latency_ms": 0.18,
    "latency_measured": True,
    "feasible": True,
    "details": {"note": "x"},
    "promoted": True,
}
RUNG1 = {**RUNG0, "rung": 1, "proxy": "params", "accuracy": 0.26, "kind": "params_m", "from_a_newer_release": 1}
RUNG1.pop("promoted")
EVERY_FIELD: dict[str, Any] = {
    "attr_version": RECORD_VERSION,
    "preset": "tiny_ref",
    "retry_of": 3,
    "repair_of": 2,
    "worker": "host:123",
    "worker_started": 1700000000.5,
    "worker_finished": 1700000002.25,
    "arch_name": "tiny-9fc17fee",
    "arch_hash": "9fc17fee43ce530a",
    "arch_yaml": "name: tiny-9fc17fee\n",
    "params": 264380,
    "gflops": 0.0109,
    "convs": 17,
    "latency_screen": {
        "predicted_ms": 0.181,
        "method": "online fit",
        "n": 4,
        "margin": 0.2,
        "limit_ms": 0.5,
        "skip": False,
    },
    "screened": "latency screen: predicted 0.9 ms",
    "screen_latency_ms": 0.1794,
    "screen_latency_measured": True,
    "latency_ms": 0.1794,
    "latency_measured": True,
    "latency_method": "onnxruntime fp32 b1 t1",
    "latency_details": {"runs": 30},
    "rungs": [RUNG0, RUNG1],
    "accuracy": 0.26,
    "accuracy_kind": "params_m",
    "fidelity": 1,
    "feasible": True,
    "violations": ["gflops over its limit by 3.0%"],
    "rejected": "space constraint: x",
    "failure": "latency: RuntimeError: boom",
    "failure_trace": "Traceback ...",
    "seconds": 2,  # an int stays an int
    "duplicate_of": 0,
}


def _study(tmp_path: Path, name: str = "old") -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    return optuna.create_study(storage=storage, study_name=name, directions=["minimize", "maximize"])


def test_the_record_knows_every_field_the_test_round_trips() -> None:
    stored = {name for name, f in TrialRecord.model_fields.items() if not f.exclude}
    assert stored == set(EVERY_FIELD)


def test_every_field_round_trips_through_a_trial(tmp_path: Path) -> None:
    study = _study(tmp_path)
    trial = study.ask({"x": optuna.distributions.IntDistribution(0, 3)})
    trial.set_constraint("latency_ms", -0.5)
    rec = TrialRecorder(trial)
    for key, value in EVERY_FIELD.items():
        rec.set(key, value)
    study.tell(trial, [0.18, 0.0109])
    (r,) = records(study)
    assert r.attrs() == EVERY_FIELD
    for key, value in EVERY_FIELD.items():
        got = getattr(r, key)
        assert (got.model_dump(exclude_unset=True) if key == "latency_screen" else got) == value or key == "rungs"
    assert [d.model_dump(exclude_unset=True) for d in r.rungs or []] == [RUNG0, RUNG1]
    assert isinstance(r.seconds, int) and isinstance(r.gflops, float)
    assert (r.number, r.state, r.values, r.constraints) == (
        0,
        TrialState.COMPLETE,
        (0.18, 0.0109),
        {"latency_ms": -0.5},
    )
    assert r.decisions == {"x": trial.params["x"]} and r.version == RECORD_VERSION
    assert r.rung(1) is not None and r.rung(1).accuracy == 0.26 and r.rung(2) is None
    assert r.original == 0 and r.has("duplicate_of") and not r.interrupted


def test_the_writers_version_what_they_write(tmp_path: Path) -> None:
    study = _study(tmp_path)
    record.enqueue(study, {"x": 1}, preset="tiny_ref", retry_of=4)
    record.enqueue(study, {"x": 2}, repair_of=5)
    asked = study.ask()
    record.write(asked, failure="worker: boom")
    study.tell(asked, state=TrialState.FAIL)
    running = study.ask()
    record.fail_elsewhere(study, study.trials[running.number], record.INTERRUPTED_PREFIX + ": stopped")
    first, second = records(study, ordered=True)
    assert first.attrs() == {"attr_version": 1, "preset": "tiny_ref", "retry_of": 4, "failure": "worker: boom"}
    assert second.attrs() == {"attr_version": 1, "repair_of": 5, "failure": "interrupted: stopped"}
    assert second.state == TrialState.FAIL and second.interrupted
    assert failed_count(study) == 1 and interrupted_count(study) == 1


def test_a_key_or_type_nasearch_does_not_store_is_a_programming_error() -> None:
    rec = DictRecorder()
    with pytest.raises(KeyError, match="no trial attribute"):
        rec.set("rung", [])
    with pytest.raises(ValueError):
        rec.set("rungs", "fast")
    rec.set("preset", "tiny_ref")
    assert rec.attrs == {"preset": "tiny_ref"}


def _old_study(tmp_path: Path, bad: tuple[str, Any] | None = None) -> optuna.Study:
    """A study as nasearch wrote it before the record: raw Optuna calls, no version on most trials (`bad`: an
    attribute trial 1 gets last)."""
    study = _study(tmp_path)
    dist = {"x": optuna.distributions.IntDistribution(0, 9)}
    study.set_user_attr("nasearch", {"constraints": {"latency_ms": 0.5}, "experiment": {"suite": {"models": 2}}})
    study.enqueue_trial({"x": 1}, user_attrs={"preset": "tiny_ref"})
    docs = {0: 0.20, 1: 0.30}
    for x, acc in docs.items():  # two complete trials, the preset first (no attr_version: older still)
        lat = {0: 0.2, 1: 0.3}[x]
        t = study.ask(dist)
        for key, value in {
            "preset": t.user_attrs.get("preset"),
            "arch_name": f"tiny-{x}",
            "arch_hash": f"hash{x}",
            "arch_yaml": f"name: tiny-{x}\n",
            "params": 1000 + x,
            "gflops": 0.01,
            "convs": 9,
            "screen_latency_ms": lat,
            "screen_latency_measured": True,
            "latency_ms": lat,
            "latency_measured": True,
            "latency_method": "onnxruntime",
            "rungs": [{**RUNG0, "accuracy": acc, "latency_ms": lat}],
            "accuracy": acc,
            "accuracy_kind": "gflops",
            "fidelity": 0,
            "feasible": True,
            "violations": [],
            "seconds": 0.5,
        }.items():
            if value is not None:
                t.set_user_attr(key, value)
        if bad is not None and t.number == 1:
            t.set_user_attr(*bad)
        t.set_constraint("latency_ms", -0.5)
        study.tell(t, [lat, acc])
    dup = study.ask(dist)  # a duplicate of trial 1, as the current code writes it
    for key, value in {"attr_version": 1, "arch_hash": "hash1", "duplicate_of": 1, "rungs": []}.items():
        dup.set_user_attr(key, value)
    study.tell(dup, [0.3, 0.3])
    skipped = study.ask(dist)
    skipped.set_user_attr("screened", "latency screen: predicted 0.9 ms")
    study.tell(skipped, state=TrialState.PRUNED)
    stopped = study.ask(dist)
    stopped.set_user_attr("failure", "interrupted: the search stopped while this trial ran (retried on --resume)")
    study.tell(stopped, state=TrialState.FAIL)
    study.ask(dist)  # left RUNNING by a killed search
    return study


def test_a_study_written_before_the_record_is_read(tmp_path: Path) -> None:
    study = _old_study(tmp_path)
    recs = records(study, ordered=True)
    assert all(r.version == 1 for r in recs) and recs[0].preset == "tiny_ref"
    res = collect(study)
    assert [r["state"] for r in res.rows] == ["complete", "complete", "complete", "screened", "failed", "running"]
    assert [e.trial for e in res.front] == [0, 1] and res.front[0].preset == "tiny_ref"
    assert res.rows[2]["duplicate_of"] == 1 and res.meta["constraints"] == {"latency_ms": 0.5}
    board = StorageBoard(study)
    assert board.points(0) == {"0": (0.2, 0.2), "1": (0.3, 0.3)}
    assert [m.convs for m in board.measured()] == [9, 9]
    prior = board.lookup("hash1")
    assert prior is not None and prior.number == 1 and prior.attrs["rungs"][0]["accuracy"] == 0.3
    assert failed_count(study) == 0 and interrupted_count(study) == 1
    assert recover_interrupted(study) == [5]
    retried = records(study, ordered=True)[-1]
    assert retried.retry_of == 5 and retried.state == TrialState.WAITING and retried.version == RECORD_VERSION


def _run_dir(tmp_path: Path, study: optuna.Study) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    RunInfo(f"sqlite:///{tmp_path / 'study.db'}", study.study_name, "exp.yaml", "f").save(run_dir)
    return run_dir


def test_pareto_reads_an_old_study(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, _old_study(tmp_path))
    result = runner.invoke(app, ["pareto", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [(e["trial"], e["preset"], e["accuracy"]) for e in doc] == [(0, "tiny_ref", 0.2), (1, None, 0.3)]


MALFORMED = {
    "rungs": ("fast", "trials[1].rungs", "list"),
    "rung_latency": ([{**RUNG0, "latency_ms": "slow"}], "trials[1].rungs[0].latency_ms", "'slow'"),
    "rung_missing": ([{"rung": 0, "accuracy": 0.1}], "trials[1].rungs[0].latency_ms", "required"),
    "duplicate_of": ("three", "trials[1].duplicate_of", "'three'"),
    "latency_screen": ([1], "trials[1].latency_screen", "list"),
    "newer": (RECORD_VERSION + 1, "trials[1].attr_version", "newer nasearch"),
    "version": ("one", "trials[1].attr_version", "'one'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_attribute_is_named_with_its_study_trial_and_field(tmp_path: Path, case: str) -> None:
    value, path, needle = MALFORMED[case]
    key = {"rung_latency": "rungs", "rung_missing": "rungs", "newer": "attr_version", "version": "attr_version"}
    study = _old_study(tmp_path, (key.get(case, case), value))
    with pytest.raises(InputError) as info:
        records(study)
    line = info.value.line()
    assert line.startswith(f"error: study 'old': {path}: expected ") and needle in line, line
    result = runner.invoke(app, ["pareto", str(_run_dir(tmp_path, study)), "--json"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"error: study 'old': {path}: expected" in result.output


def test_a_malformed_study_description_is_named(tmp_path: Path) -> None:
    study = _old_study(tmp_path)
    study.set_user_attr("nasearch", {"constraints": ["latency"]})
    result = runner.invoke(app, ["pareto", str(_run_dir(tmp_path, study)), "--json"])
    assert result.exit_code == 2 and "error: study 'old': nasearch.constraints: expected a valid dictionary" in (
        result.output
    )


ATTRIBUTE_ACCESS = re.compile(r"\b(user_attrs|set_user_attr|system_attrs|set_system_attr)\b")
STORAGE_WRITES = re.compile(r"\bset_trial_(user|system)_attr\b")


def _sources() -> list[Path]:
    return sorted([*(ROOT / "nasearch").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])


def test_only_the_record_module_touches_trial_and_study_attributes() -> None:
    home = ROOT / "nasearch" / "search" / "record.py"
    compat = ROOT / "nasearch" / "search" / "compat.py"  # the private storage call record.fail_elsewhere uses
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _sources()
        if p != home
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if ATTRIBUTE_ACCESS.search(line) or (p != compat and STORAGE_WRITES.search(line))
    ]
    assert offenders == [], f"attribute access outside nasearch/search/record.py: {offenders}"
    assert ATTRIBUTE_ACCESS.search(home.read_text())  # the check looks for what the record module does use


def test_each_input_rule_is_written_once() -> None:
    """The imgsz and positive-integer rules live in nasearch.validation only; every caller uses them."""
    home = ROOT / "nasearch" / "validation.py"
    rules = (r"< 32 or .*% 32", r"multiple of 32, at least 32", r"\"a positive integer\", str\(", r"def _check_pos")
    for pattern in rules:
        found = [str(p.relative_to(ROOT)) for p in _sources() if p != home and re.search(pattern, p.read_text())]
        assert found == [], f"{pattern} outside nasearch/validation.py: {found}"


def test_the_rules_keep_their_messages() -> None:
    with pytest.raises(InputError) as info:
        check_imgsz(100)
    assert as_flag(info.value).line() == "error: --imgsz: imgsz: expected a multiple of 32, at least 32, found 100"
    check_imgsz(None)
    check_imgsz(64)
    with pytest.raises(InputError) as info:
        check_positive(0, "--max-archs")
    assert info.value.line() == "error: --max-archs: max-archs: expected a positive integer, found 0"
    with pytest.raises(InputError) as info:
        check_positive(-1, "--calib-images", "calib_images")
    assert info.value.line() == "error: --calib-images: calib_images: expected a positive integer, found -1"
    with pytest.raises(InputError) as info:
        check_positive(0, "batch")  # a field, as library code names it
    assert as_flag(info.value).line() == "error: --batch: batch: expected a positive integer, found 0"
    check_positive(None, "--trials")
    check_positive(1, "--trials")
