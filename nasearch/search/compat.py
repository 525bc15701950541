"""Every private Optuna call the project makes, in one place (tests/test_search_compat.py checks each).

Optuna has no public way to claim a waiting trial atomically, to name a trial to its storage, or to
re-open a running trial in another process; these few calls do it. A release that moves any of them
fails `test_search_compat` loudly instead of breaking resume or the cluster executors silently; the
Optuna releases they were tested with are the bounds in pyproject.toml.
"""

from __future__ import annotations

from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb import models as _rdb_models


def trial_table() -> sqlalchemy.Table:
    """The trials table of Optuna's relational storage (for a conditional UPDATE)."""
    return _rdb_models.TrialModel.__table__


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's id of a trial (not its number, which counts within one study)."""
    return int(trial._trial_id)


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def reopen_trial(study: optuna.Study, tid: int) -> optuna.Trial:
    """A live handle on a trial another process asked, so this process can write its attributes."""
    return optuna.Trial(study, tid)


def mark_failed(study: optuna.Study, trial: optuna.trial.FrozenTrial, attrs: dict[str, Any]) -> None:
    """Fail a trial this process does not hold (left RUNNING by a dead search or a lost node)."""
    storage = storage_of(study)
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id(trial), key, value)
    storage.set_trial_state_values(trial_id(trial), optuna.trial.TrialState.FAIL)
