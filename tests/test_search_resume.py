"""`kill -9` a real `nasearch search` subprocess mid-trial, then `--resume`: nothing completed is lost or
changed, the interrupted trial is retried with the same decisions, and the target count is reached."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.search.resume import INTERRUPTED
from tests.fixtures import MEASURED_ORT, search_process, tiny_experiment

TRIALS = 6
EXPERIMENT = tiny_experiment("resume-test", TRIALS, seed=11, latency=MEASURED_ORT)


def _snapshot(db: Path) -> dict[int, tuple]:
    study = optuna.load_study(study_name="resume-test", storage=f"sqlite:///{db}")
    return {t.number: (t.state, t.params, t.values, t.user_attrs) for t in study.get_trials(deepcopy=True)}


def test_kill_minus_9_then_resume(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT)
    run_dir = tmp_path / "run"
    db = run_dir / "study.db"
    proc = search_process(exp, run_dir)
    deadline = time.monotonic() + 300
    killed_running: list[int] = []
    checked_lock = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if not (run_dir / "run.json").exists():  # the study is not fully created yet
                continue
            try:
                snap = _snapshot(db)
            except Exception:  # the study is being created
                continue
            done = [n for n, s in snap.items() if s[0] == TrialState.COMPLETE]
            # running and past the cheap checks: its latency measurement takes seconds, so it is still
            # running when the kill lands
            running = [n for n, s in snap.items() if s[0] == TrialState.RUNNING and "params" in s[3]]
            if running and not checked_lock:
                # a second search on the same run directory is refused while the first holds it
                busy = CliRunner().invoke(app, ["search", str(exp), "--out", str(run_dir), "--resume"])
                assert busy.exit_code == 2 and "a search still running there" in busy.output
                checked_lock = True
                continue
            if len(done) >= 2 and running:
                os.kill(proc.pid, signal.SIGKILL)
                killed_running = running
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert killed_running, "the search finished before it could be killed"
    before = _snapshot(db)
    killed_running = [n for n, s in before.items() if s[0] == TrialState.RUNNING]
    assert killed_running
    completed_before = {n: s for n, s in before.items() if s[0] == TrialState.COMPLETE}
    assert 2 <= len(completed_before) < TRIALS

    resumed = search_process(exp, run_dir, "--resume", "--json")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    after = _snapshot(db)
    for number, state in completed_before.items():
        assert after[number] == state, f"completed trial {number} changed on resume"
    assert sum(s[0] == TrialState.COMPLETE for s in after.values()) == TRIALS
    for number in killed_running:
        assert after[number][0] == TrialState.FAIL and after[number][3]["failure"] == INTERRUPTED
        retries = [s for s in after.values() if s[3].get("retry_of") == number]
        assert len(retries) == 1 and before[number][1].items() <= retries[0][1].items(), "other decisions"
    assert '"retried"' in out and (run_dir / "pareto.csv").is_file()
