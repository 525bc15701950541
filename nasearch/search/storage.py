"""The Optuna storage a search writes to: a SQLite file or a PostgreSQL server, safe for many processes.

Optuna hands a waiting (enqueued) trial to a process by reading its state and then writing RUNNING,
relying on `SELECT … FOR UPDATE`. SQLite ignores that lock, so two processes of `--workers N` can both
read WAITING and both run the same trial; the slower one then fails on telling a finished trial.
`ClaimingRDBStorage` claims a waiting trial with one conditional UPDATE, which SQLite and PostgreSQL
both do atomically (PostgreSQL re-checks the condition on the locked row), so exactly one process gets
it. `postgresql://` URLs use the psycopg 3 driver (the `cluster` extra). A storage URL may carry a
password: every message shows it through `errors.masked`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import optuna
import sqlalchemy
from optuna.trial import TrialState

from nasearch.errors import InputError, masked
from nasearch.search.compat import trial_table

SCHEMA_RETRIES = 8
CONNECT_TIMEOUT_S = 10
_SERVER_SCHEMES = ("postgresql", "postgres")


class ClaimingRDBStorage(optuna.storages.RDBStorage):
    """RDBStorage whose WAITING → RUNNING transition is a single atomic compare-and-set."""

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        if state != TrialState.RUNNING or values is not None:
            return super().set_trial_state_values(trial_id, state, values)
        table = trial_table()
        claim = (
            sqlalchemy.update(table)
            .where(table.c.trial_id == trial_id, table.c.state == TrialState.WAITING)
            .values(state=TrialState.RUNNING, datetime_start=datetime.now())
        )
        with self.engine.begin() as conn:
            claimed = conn.execute(claim).rowcount == 1
        if not claimed:  # taken by another process, or finished: the same answers as Optuna's own path
            self.check_trial_is_updatable(trial_id, self.get_trial(trial_id).state)
        return claimed


def is_server_url(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in _SERVER_SCHEMES


def engine_url(url: str) -> str:
    """The URL SQLAlchemy opens: `postgresql://` (and `postgres://`) through psycopg 3."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in _SERVER_SCHEMES:
        return f"postgresql+psycopg://{rest}"
    return url


OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})
STUDY_DB = "an Optuna study database (SQLite)"


def sqlite_file(url: str) -> Path | None:
    """The file of an `sqlite:///PATH` URL (None for a server URL or an in-memory database)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _sqlite_tables(path: Path, readonly: bool) -> set[str]:
    """The tables of an existing SQLite file; an unreadable, truncated or foreign file is an InputError.

    Opened read-only when asked (`immutable` when the file or its folder cannot be written, as in an
    archive, where SQLite could not create its WAL side files). The message names the file, never
    quotes it.
    """
    if path.is_dir():
        raise InputError(path, "storage", STUDY_DB, "a directory")
    uri = f"file:{quote(str(path.absolute()))}?{readonly_mode(path)}" if readonly else None
    try:
        con = sqlite3.connect(uri, uri=True) if uri else sqlite3.connect(path, timeout=60)
        try:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError:
        raise InputError(
            path, "storage", STUDY_DB, "a file that is not an SQLite database (truncated or foreign)"
        ) from None
    except (sqlite3.Error, OSError) as exc:
        raise InputError(
            path,
            "storage",
            f"{STUDY_DB} that can be opened",
            f"{type(exc).__name__} ({'read-only' if readonly else 'read-write'})",
        ) from None


def readonly_mode(path: Path) -> str:
    """SQLite URI parameters to read `path` without writing: `mode=ro`; `immutable=1` in an archive
    (file or folder not writable) whose database has no WAL file left, where SQLite could not create one."""
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    wal = path.with_name(path.name + "-wal")
    return "mode=ro" if writable or wal.exists() else "immutable=1"


def _prepare_sqlite(url: str, readonly: bool = False) -> str:
    """Check an SQLite file before Optuna opens it; return the URL to open.

    Writing: the folder is created and the WAL journal set (readers never block the writer; persistent in
    the file). Reading: the file must exist and nothing is created or changed. Either way an existing file
    must be an SQLite database that is empty or holds Optuna's tables.
    """
    path = sqlite_file(url)
    if path is None:
        return url
    if readonly and not path.is_file():
        raise InputError(path, "storage", STUDY_DB, "no such file")
    if path.exists():
        tables = _sqlite_tables(path, readonly)
        if tables and not tables >= OPTUNA_TABLES:
            raise InputError(path, "storage", STUDY_DB, "an SQLite database without Optuna's tables")
    if readonly:
        return f"sqlite:///file:{quote(str(path.absolute()))}?{readonly_mode(path)}&uri=true"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=60)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.DatabaseError:
        raise InputError(path, "storage", STUDY_DB, "a file that is not an SQLite database") from None
    except (sqlite3.Error, OSError) as exc:
        raise InputError(path, "storage", f"{STUDY_DB} in a writable folder", type(exc).__name__) from None
    return url


def _schema_race(exc: Exception) -> bool:
    text = str(exc)
    return (
        "UNIQUE constraint failed" in text
        or "already exists" in text
        or "database is locked" in text
        or "duplicate key value" in text
    )


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 120}}
    if is_server_url(url):  # an unreachable server is an error within seconds, not a hang
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {}


def _driver_missing(url: str) -> InputError:
    return InputError(
        "storage",
        "storage",
        "a PostgreSQL driver for this URL: pip install 'nasearch[cluster]' (psycopg 3)",
        f"{masked(url)!r} and no psycopg module",
    )


def open_storage(url: str, readonly: bool = False) -> optuna.storages.BaseStorage:
    """The storage at `url`; several processes may open a new SQLite file or database at once.

    `readonly` (the commands that only read a run): an SQLite file is opened read-only and must exist;
    no table, journal or folder is created (on a server, no table is created).
    """
    target = engine_url(_prepare_sqlite(url, readonly))
    kwargs: dict[str, Any] = {"skip_table_creation": True} if readonly else {}
    kwargs["engine_kwargs"] = _engine_kwargs(url)
    error: Exception = RuntimeError("no attempt")
    for attempt in range(SCHEMA_RETRIES):
        try:
            return ClaimingRDBStorage(target, **kwargs)
        except ModuleNotFoundError as exc:
            if is_server_url(url) and "psycopg" in str(exc):
                raise _driver_missing(url) from None
            error = exc
            break
        except Exception as exc:
            if _schema_race(exc) and attempt < SCHEMA_RETRIES - 1:
                time.sleep(0.2 * (attempt + 1))  # another process is creating the schema right now
                continue
            error = exc
            break
    detail = masked(" ".join(str(error).split("\n(Background")[0].split()))[:200]
    raise InputError(
        "storage",
        "storage",
        "a reachable Optuna storage URL (sqlite:///…, postgresql://…)",
        f"{masked(url)!r} ({type(error).__name__}: {detail})",
    ) from None
