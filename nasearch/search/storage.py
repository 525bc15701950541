"""The Optuna storage a search writes to, safe for several processes on one SQLite file.

Optuna hands a waiting (enqueued) trial to a process by reading its state and then writing RUNNING,
relying on `SELECT … FOR UPDATE`. SQLite ignores that lock, so two processes of `--workers N` can both
read WAITING and both run the same trial; the slower one then fails on telling a finished trial.
`ClaimingRDBStorage` claims a waiting trial with one conditional UPDATE, which every database does
atomically, so exactly one process gets it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb import models
from optuna.trial import TrialState

from nasearch.errors import InputError

SCHEMA_RETRIES = 8


class ClaimingRDBStorage(optuna.storages.RDBStorage):
    """RDBStorage whose WAITING → RUNNING transition is a single atomic compare-and-set."""

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        if state != TrialState.RUNNING or values is not None:
            return super().set_trial_state_values(trial_id, state, values)
        table = models.TrialModel.__table__
        claim = (sqlalchemy.update(table)
                 .where(table.c.trial_id == trial_id, table.c.state == TrialState.WAITING)
                 .values(state=TrialState.RUNNING, datetime_start=datetime.now()))
        with self.engine.begin() as conn:
            claimed = conn.execute(claim).rowcount == 1
        if not claimed:  # taken by another process, or finished: the same answers as Optuna's own path
            self.check_trial_is_updatable(trial_id, self.get_trial(trial_id).state)
        return claimed


def _prepare_sqlite(url: str) -> None:
    """WAL journal (readers never block the writer; persistent in the file) before Optuna opens it."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _schema_race(exc: Exception) -> bool:
    text = str(exc)
    return "UNIQUE constraint failed" in text or "already exists" in text or "database is locked" in text


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage at `url`; several processes may open a new SQLite file at once."""
    _prepare_sqlite(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    error: Exception = RuntimeError("no attempt")
    for attempt in range(SCHEMA_RETRIES):
        try:
            return ClaimingRDBStorage(url, **kwargs)
        except Exception as exc:
            if _schema_race(exc) and attempt < SCHEMA_RETRIES - 1:
                time.sleep(0.2 * (attempt + 1))  # another process is creating the schema right now
                continue
            error = exc
            break
    raise InputError("storage", "storage", "a reachable Optuna storage URL (sqlite:///…, postgresql://…)",
                     f"{url!r} ({type(error).__name__}: {' '.join(str(error).split())[:160]})") from None
