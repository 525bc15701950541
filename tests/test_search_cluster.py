"""A search on a real local cluster: a PostgreSQL study and a two-node Ray cluster whose second node
advertises `T4`. Losing that node mid-trial, or killing the driver, loses no completed trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nasearch.app.search import run_search
from nasearch.search.storage import open_storage
from tests.cluster import PostgresServer, RayCluster
from tests.fixtures import MEASURED_ORT, search_process, tiny_experiment

pytestmark = pytest.mark.cluster

TRIALS = 4


def _experiment(tmp_path: Path, url: str, executor: str, trials: int = TRIALS) -> Path:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        tiny_experiment(
            "cluster-test", trials, seed=3, latency=MEASURED_ORT, extra=f"storage: {url}\nexecutor: {executor}\n"
        )
    )
    return exp


def _finish(proc: subprocess.Popen, timeout: float = 240) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out)


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name="cluster-test", storage=open_storage(url))
    except KeyError:
        return []
    return study.get_trials(deepcopy=False)


def _wait(what: str, cond: Callable[[], object], proc: subprocess.Popen, timeout: float = 180) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = cond()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the search ended before {what}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def _running_on_a_worker(url: str) -> optuna.trial.FrozenTrial | None:
    return next((t for t in _trials(url) if t.state == TrialState.RUNNING and "worker" in t.user_attrs), None)


def _completed_each_once(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == TRIALS, [(t.number, t.state) for t in trials]
    assert len({t.number for t in done}) == TRIALS
    return done


def test_a_lost_node_costs_one_trial_which_runs_again(
    tmp_path: Path, postgres: PostgresServer, ray_cluster: RayCluster
) -> None:
    url = postgres.url()
    exp = _experiment(tmp_path, url, f"{{kind: ray, address: '{ray_cluster.address}', resources: {{CPU: 1, T4: 1}}}}")
    proc = search_process(exp, tmp_path / "run", "--json", env_extra=ray_cluster.client_env)
    try:
        victim = _wait("trial running on the T4 node", lambda: _running_on_a_worker(url), proc)
        ray_cluster.kill_node("t4")
        lost = _wait(
            "lost trial", lambda: next((t for t in _trials(url) if t.state == TrialState.FAIL), None), proc, timeout=90
        )
        ray_cluster.add_node("t4", {"T4": 1.0})
        doc = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        if "t4" not in ray_cluster.workers:  # the next test gets the cluster it expects
            ray_cluster.add_node("t4", {"T4": 1.0})
    assert lost.number == victim.number, "the node was killed after its trial finished: nothing was lost"
    assert lost.user_attrs["failure"].startswith("lost: the Ray node or worker running this trial died")
    trials = _trials(url)
    done = _completed_each_once(trials)
    retried = [t for t in trials if t.user_attrs.get("retry_of") == lost.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE and retried[0].params == lost.params
    assert doc["trials"]["complete"] == TRIALS and doc["trials"]["failed"] == 1
    assert url.split("@")[0].split(":")[-1] not in json.dumps(doc)  # the password is never printed
    assert retried[0].user_attrs["worker"] != victim.user_attrs["worker"]  # on the restarted node
    for t in done:
        assert t.user_attrs["rungs"][0]["kind"] == "gflops" and t.user_attrs["latency_measured"] is True


def test_a_killed_driver_resumes_on_the_same_study(
    tmp_path: Path, postgres: PostgresServer, ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.url()
    exp = _experiment(
        tmp_path, url, f"{{kind: ray, address: '{ray_cluster.address}', resources: {{CPU: 1}}, concurrent: 2}}"
    )
    run_dir = tmp_path / "run"
    proc = search_process(exp, run_dir, "--json", env_extra=ray_cluster.client_env)
    try:
        _wait(
            "complete trial and a running one",
            lambda: any(t.state == TrialState.COMPLETE for t in _trials(url)) and _running_on_a_worker(url),
            proc,
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = {t.number: (t.values, t.datetime_complete) for t in _trials(url) if t.state == TrialState.COMPLETE}
    running = [t.number for t in _trials(url) if t.state == TrialState.RUNNING]
    assert before and running
    for key, value in ray_cluster.client_env.items():  # resumed in this process: one start-up less
        monkeypatch.setenv(key, value)
    doc = run_search(exp, run_dir, resume=True, show_progress=False)
    trials = _trials(url)
    _completed_each_once(trials)
    after = {t.number: (t.values, t.datetime_complete) for t in trials if t.state == TrialState.COMPLETE}
    assert all(after[n] == v for n, v in before.items())  # finished trials untouched
    assert sorted(doc["retried"]) == sorted(running)
    for n in running:
        assert trials[n].state == TrialState.FAIL and trials[n].user_attrs["failure"].startswith("interrupted")
        assert any(t.user_attrs.get("retry_of") == n for t in trials)


def test_local_workers_share_a_postgresql_study(tmp_path: Path, postgres: PostgresServer) -> None:
    url = postgres.url()
    exp = _experiment(tmp_path, url, "{kind: local, workers: 2}", trials=2)
    doc = run_search(exp, tmp_path / "run", show_progress=False)
    trials = _trials(url)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert 2 <= len(done) <= 3 and doc["trials"]["complete"] == len(done)  # may overshoot by workers - 1
    assert all(t.user_attrs["worker"] for t in done)
    assert doc["storage"] == url.replace(":s3cret-pw@", ":***@")
