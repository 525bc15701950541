"""Several processes popping enqueued trials from one SQLite study each get a different trial."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from nasearch.search.storage import ClaimingRDBStorage, open_storage


def _ask_many(url: str, n: int, out: mp.Queue) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    out.put([study.ask().number for _ in range(n)])


def _queued_study(tmp_path: Path, waiting: int) -> tuple[str, optuna.Study]:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    for k in range(waiting):
        study.enqueue_trial({"x": float(k)})
    return url, study


def test_processes_never_claim_the_same_waiting_trial(tmp_path: Path) -> None:
    url, study = _queued_study(tmp_path, waiting=80)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_ask_many, args=(url, 30, out)) for _ in range(4)]
    for p in procs:
        p.start()
    claims = [n for _ in procs for n in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert len(claims) == 120 and len(set(claims)) == 120
    assert set(range(80)) <= set(claims)  # the queue was served first, then new trials
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.RUNNING) == 120 and TrialState.WAITING not in states


def test_claiming_a_taken_or_finished_trial(tmp_path: Path) -> None:
    url, study = _queued_study(tmp_path, waiting=2)
    storage = study._storage
    assert isinstance(open_storage(url), ClaimingRDBStorage)
    first, second = (t._trial_id for t in study.get_trials(deepcopy=False))
    assert storage.set_trial_state_values(first, TrialState.RUNNING) is True
    assert storage.set_trial_state_values(first, TrialState.RUNNING) is False
    storage.set_trial_state_values(first, TrialState.COMPLETE, values=[1.0])
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(first, TrialState.RUNNING)
    assert study.ask().number == 1 and storage.get_trial(second).state == TrialState.RUNNING
