"""Continuing a study after a crash or `kill -9`, and keeping two searches off one run directory.

A run directory is locked (`flock` on `RUN_DIR/search.lock`) while a search runs; the kernel drops the
lock when the process dies, however it dies. On `--resume`, trials the dead search left RUNNING are
marked FAIL with the reason `interrupted` and enqueued again with the same decisions (`retry_of` names
the original). Completed trials are never touched.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO

import optuna
from optuna.trial import TrialState

from nasearch.errors import InputError
from nasearch.search import record

LOCK_FILE = "search.lock"
INTERRUPTED = f"{record.INTERRUPTED_PREFIX}: the search stopped while this trial ran (retried on --resume)"


class RunLock:
    """An exclusive, non-blocking lock on a run directory, released on exit or process death."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fh: IO[str] | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the whole search
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise InputError(
                self.path.parent,
                "<dir>",
                "a run directory no other search is using",
                f"a search still running there ({holder})",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Mark trials left RUNNING as failed and enqueue each again; return the numbers of the originals."""
    retried = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record.fail_elsewhere(study, t, INTERRUPTED)
        retry(study, t)
        retried.append(t.number)
    return retried


def retry(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial) -> None:
    """Enqueue the same decisions again (`retry_of` names the failed trial; a preset keeps its name)."""
    preset = record.TrialRecord.from_trial(trial, study.study_name).preset
    record.enqueue(study, dict(trial.params), preset=preset, retry_of=trial.number)


def interrupted_count(study: optuna.Study) -> int:
    return sum(1 for r in record.records(study, (TrialState.FAIL,)) if r.interrupted)
