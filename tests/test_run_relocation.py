"""Runs are relocatable and reading never writes: copy, move, archive (read-only) and corrupt study files."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from nasearch.app.search import run_search
from nasearch.cli.main import app
from nasearch.explore import open_run
from nasearch.search.study import RunInfo
from tests.conftest import SPACES
from tests.fixtures import tiny_experiment

runner = CliRunner()


def _experiment(tmp_path: Path, trials: int = 3, extra: str = "") -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(tiny_experiment("reloc-test", trials, seed=5, extra=extra))
    return path


def _complete(run_dir: Path) -> int:
    db = run_dir / "study.db"
    study = optuna.load_study(study_name="reloc-test", storage=f"sqlite:///{db}")
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and time, but SQLite's side files (an earlier connection of this process going away
    removes them)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if not p.name.endswith(("-wal", "-shm"))
    }


@pytest.fixture()
def run(tmp_path: Path, predicted_latency: None) -> tuple[Path, Path]:
    exp = _experiment(tmp_path)
    run_dir = tmp_path / "R"
    run_search(exp, run_dir, show_progress=False)
    con = sqlite3.connect(run_dir / "study.db")  # as when the search process has exited: all in study.db
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return exp, run_dir


def test_run_json_stores_the_study_relative_to_the_run(run) -> None:
    _, run_dir = run
    assert json.loads((run_dir / "run.json").read_text())["storage"] == "sqlite:///study.db"
    assert RunInfo.load(run_dir).storage == f"sqlite:///{(run_dir / 'study.db').absolute()}"


def test_a_copy_resumes_into_itself_only(run, tmp_path: Path) -> None:
    exp, run_dir = run
    copy = tmp_path / "R2"
    shutil.copytree(run_dir, copy)
    before = _tree(run_dir)
    result = runner.invoke(
        app, ["search", str(exp), "--out", str(copy), "--resume", "--trials", "5", "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert _tree(run_dir) == before  # the original is untouched
    assert _complete(run_dir) == 3 and _complete(copy) == 5


def test_a_moved_run_is_read_where_it_is_and_nothing_is_recreated(run, tmp_path: Path) -> None:
    _, run_dir = run
    moved = tmp_path / "R3"
    shutil.move(run_dir, moved)
    result = runner.invoke(app, ["pareto", str(moved), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) and not run_dir.exists()
    assert open_run(moved).results.front and not run_dir.exists()


def test_a_copy_with_a_broken_study_is_refused_not_read_from_the_original(run, tmp_path: Path) -> None:
    _, run_dir = run
    for name, content in (
        ("truncated", (run_dir / "study.db").read_bytes()[:2000]),
        ("foreign", b"root:x:0:0:root:/root:/bin/bash\n" * 50),
    ):
        copy = tmp_path / name
        shutil.copytree(run_dir, copy)
        (copy / "study.db").write_bytes(content)
        result = runner.invoke(app, ["pareto", str(copy), "--json"])
        assert result.exit_code == 2, (name, result.output)
        assert str(copy / "study.db") in result.output and "root:x" not in result.output
        assert result.output.strip().count("\n") == 0, result.output


def test_a_foreign_sqlite_database_is_refused_and_left_unchanged(run, tmp_path: Path) -> None:
    exp, run_dir = run
    copy = tmp_path / "R4"
    shutil.copytree(run_dir, copy)
    (copy / "study.db").unlink()
    con = sqlite3.connect(copy / "study.db")
    con.execute("CREATE TABLE blocks (name TEXT)")
    con.commit()
    con.close()
    before = (copy / "study.db").read_bytes()
    for args in (["pareto", str(copy)], ["search", str(exp), "--out", str(copy), "--resume", "--no-progress"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "without Optuna's tables" in result.output, result.output
    assert (copy / "study.db").read_bytes() == before


def test_reading_a_run_without_its_study_creates_nothing(run, tmp_path: Path) -> None:
    _, run_dir = run
    (run_dir / "study.db").unlink()
    before = _tree(run_dir)
    result = runner.invoke(app, ["pareto", str(run_dir)])
    assert result.exit_code == 2 and str(run_dir / "study.db") in result.output and "no such file" in result.output
    with pytest.raises(Exception, match="no such file"):
        open_run(run_dir)
    assert _tree(run_dir) == before


def test_an_archived_read_only_run_can_be_read(run, monkeypatch: pytest.MonkeyPatch) -> None:
    _, run_dir = run
    real_access = os.access

    def no_writes(path, mode, *args, **kwargs):  # what a read-only mount answers, even to root
        inside = Path(path).absolute().is_relative_to(run_dir.absolute())
        return False if inside and mode & os.W_OK else real_access(path, mode, *args, **kwargs)

    paths = [run_dir, *run_dir.rglob("*")]
    try:
        for p in sorted(paths, reverse=True):
            p.chmod(stat.S_IREAD | (stat.S_IEXEC if p.is_dir() else 0))
        monkeypatch.setattr(os, "access", no_writes)
        before = _tree(run_dir)
        result = runner.invoke(app, ["pareto", str(run_dir), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)
        assert open_run(run_dir).results.front
        assert _tree(run_dir) == before
    finally:
        for p in paths:
            p.chmod(stat.S_IRWXU)


def test_a_legacy_absolute_storage_follows_the_run(run, tmp_path: Path) -> None:
    _, run_dir = run
    copy = tmp_path / "legacy"
    shutil.copytree(run_dir, copy)
    doc = json.loads((copy / "run.json").read_text())
    doc["storage"] = f"sqlite:///{(run_dir / 'study.db').absolute()}"  # as runs were written before
    (copy / "run.json").write_text(json.dumps(doc))
    assert RunInfo.load(copy).storage == f"sqlite:///{(copy / 'study.db').absolute()}"


def test_a_storage_that_is_not_a_database_is_an_input_error(tmp_path: Path, predicted_latency: None) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n" * 40)
    exp = _experiment(tmp_path, extra=f"storage: sqlite:///{secret}\n")
    result = runner.invoke(app, ["search", str(exp), "--out", str(tmp_path / "R"), "--no-progress"])
    assert result.exit_code == 2 and str(secret) in result.output and "hunter2" not in result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert secret.read_text() == "password=hunter2\n" * 40


def test_an_impossible_latency_limit_says_why_the_front_is_empty(tmp_path: Path, predicted_latency: None) -> None:
    exp = _experiment(tmp_path, extra="constraints: {latency_ms: 0.001}\n")
    result = runner.invoke(app, ["search", str(exp), "--out", str(tmp_path / "R"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "constraints" in result.output and "latency_ms <= 0.001" in result.output
    assert "best of 3 complete trials" in result.output and (tmp_path / "R" / "trials.csv").is_file()
    shown = runner.invoke(app, ["pareto", str(tmp_path / "R"), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout) == []
    assert "no trial met the constraints: latency_ms <= 0.001" in shown.stderr


def test_space_sample_does_not_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "a.yaml"
    out.write_text("keep me\n")
    space = str(SPACES / "tiny_space.yaml")
    result = runner.invoke(app, ["space", "sample", space, "--out", str(out)])
    assert result.exit_code == 2 and "--force" in result.output and out.read_text() == "keep me\n"
    result = runner.invoke(app, ["space", "sample", space, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "a directory" in result.output
    result = runner.invoke(app, ["space", "sample", space, "--out", str(out), "--force"])
    assert result.exit_code == 0 and out.read_text() != "keep me\n"
