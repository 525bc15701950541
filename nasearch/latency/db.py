"""The latency database: SQLite in WAL mode, safe with many concurrent writers.

Tables (all keyed by the device fingerprint id):
- `fingerprints`: what each id stands for (backend, version, device, threads, precision, batch).
- `units`: one measured latency per (fingerprint, unit signature), with the unit's description.
- `networks`: whole-network measurements per (fingerprint, architecture hash, input size), with the
  signatures of the units the network consists of; the per-network overhead is fitted on these.

Every write is one short `BEGIN IMMEDIATE` transaction with `INSERT OR IGNORE`/upsert, so several
processes profiling at once lose nothing, and a kill at any moment leaves a consistent database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasearch.errors import InputError
from nasearch.latency.fingerprint import Fingerprint
from nasearch.latency.stats import Timing

SCHEMA_VERSION = "1"
BUSY_TIMEOUT_MS = 60_000
RETRIES = 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fingerprints (
    id TEXT PRIMARY KEY, backend TEXT NOT NULL, device TEXT NOT NULL, precision TEXT NOT NULL,
    batch INTEGER NOT NULL, threads INTEGER NOT NULL, json TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    fingerprint TEXT NOT NULL REFERENCES fingerprints(id), signature TEXT NOT NULL,
    kind TEXT NOT NULL, block_type TEXT NOT NULL, description TEXT NOT NULL,
    median_ms REAL NOT NULL, p10_ms REAL NOT NULL, p90_ms REAL NOT NULL, runs INTEGER NOT NULL,
    stable INTEGER NOT NULL, created REAL NOT NULL, features TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (fingerprint, signature));
CREATE TABLE IF NOT EXISTS networks (
    fingerprint TEXT NOT NULL REFERENCES fingerprints(id), arch_hash TEXT NOT NULL, imgsz INTEGER NOT NULL,
    name TEXT NOT NULL, arch TEXT NOT NULL, units TEXT NOT NULL,
    median_ms REAL NOT NULL, p10_ms REAL NOT NULL, p90_ms REAL NOT NULL, runs INTEGER NOT NULL,
    stable INTEGER NOT NULL, created REAL NOT NULL, PRIMARY KEY (fingerprint, arch_hash, imgsz));
"""


def timing_columns(timing: Timing) -> tuple[float, float, float, int, int, float]:
    """How units and networks store a timing: median, p10, p90 (ms), runs, stable (0/1), when measured."""
    return timing.median_ms, timing.p10_ms, timing.p90_ms, timing.runs, int(timing.stable), time.time()


@dataclass(frozen=True)
class UnitRow:
    signature: str
    kind: str
    block_type: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkRow:
    arch_hash: str
    imgsz: int
    name: str
    units: list[str]
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class LatencyDB:
    """A connection to one latency database file (created on first use)."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(str(path), "<file>", "a SQLite latency database file", "a directory")
        if not self.path.exists() and not create:
            raise InputError(
                str(path),
                "<file>",
                "an existing latency database (run `nasearch latency profile`)",
                "no such file",
            )
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise InputError(str(path), "<file>", "a SQLite latency database", "another kind of file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._check_foreign()
        self._retry(lambda: self.conn.execute("PRAGMA journal_mode=WAL"))
        self.conn.execute("PRAGMA synchronous=NORMAL")
        with self.write() as cur:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        version = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise InputError(str(path), "meta.schema_version", SCHEMA_VERSION, version)

    def _check_foreign(self) -> None:
        """Never add tables to some other application's SQLite file."""
        try:
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise InputError(str(self.path), "<file>", "a SQLite latency database", str(exc)) from None
        if tables and not {"meta", "units", "networks"} <= tables:
            self.conn.close()
            found = ", ".join(sorted(tables)[:5])
            raise InputError(
                str(self.path),
                "<file>",
                "a nasearch latency database",
                f"a SQLite database with other tables ({found})",
            )

    def _retry(self, fn: Any) -> Any:
        for attempt in range(RETRIES):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        return None

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One short write transaction (BEGIN IMMEDIATE takes the write lock up front)."""
        self._retry(lambda: self.conn.execute("BEGIN IMMEDIATE"))
        cur = _Cursor(self.conn)
        try:
            yield cur
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self._retry(lambda: self.conn.execute("COMMIT"))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> LatencyDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- fingerprints ---------------------------------------------------------------------------------
    def add_fingerprint(self, fp: Fingerprint) -> str:
        with self.write() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO fingerprints VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fp.id,
                    fp.backend,
                    fp.device,
                    fp.precision,
                    fp.batch,
                    fp.threads,
                    json.dumps(fp.as_dict(), sort_keys=True),
                    time.time(),
                ),
            )
        return fp.id

    def fingerprints(self) -> list[tuple[Fingerprint, int, int]]:
        """Every fingerprint with its number of units and of whole networks."""
        rows = self.conn.execute(
            "SELECT f.json, (SELECT COUNT(*) FROM units u WHERE u.fingerprint=f.id), "
            "(SELECT COUNT(*) FROM networks n WHERE n.fingerprint=f.id) "
            "FROM fingerprints f ORDER BY f.created"
        ).fetchall()
        return [(Fingerprint.from_dict(json.loads(j)), nu, nn) for j, nu, nn in rows]

    # -- units ----------------------------------------------------------------------------------------
    def put_unit(
        self,
        fp_id: str,
        signature: str,
        kind: str,
        block_type: str,
        description: dict,
        timing: Timing,
        features: dict[str, float] | None = None,
    ) -> bool:
        """Store a unit's latency unless one is there already; True when this call added it."""
        with self.write() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO units VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fp_id,
                    signature,
                    kind,
                    block_type,
                    json.dumps(description, sort_keys=True),
                    *timing_columns(timing),
                    json.dumps(features or {}, sort_keys=True),
                ),
            )
            return cur.rowcount == 1

    def unit_signatures(self, fp_id: str) -> set[str]:
        rows = self.conn.execute("SELECT signature FROM units WHERE fingerprint=?", (fp_id,)).fetchall()
        return {r[0] for r in rows}

    def units(self, fp_id: str, signatures: Iterable[str] | None = None) -> dict[str, UnitRow]:
        rows = self.conn.execute(
            "SELECT signature, kind, block_type, median_ms, p10_ms, p90_ms, runs, features FROM units "
            "WHERE fingerprint=?",
            (fp_id,),
        ).fetchall()
        wanted = None if signatures is None else set(signatures)
        return {r[0]: UnitRow(*r[:7], json.loads(r[7])) for r in rows if wanted is None or r[0] in wanted}

    def unit_description(self, fp_id: str, signature: str) -> dict | None:
        row = self.conn.execute(
            "SELECT description FROM units WHERE fingerprint=? AND signature=?", (fp_id, signature)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    # -- whole networks -------------------------------------------------------------------------------
    def put_network(
        self, fp_id: str, arch_hash: str, imgsz: int, name: str, arch: dict, units: list[str], timing: Timing
    ) -> None:
        """Store (or replace with a newer measurement) a whole-network latency."""
        with self.write() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO networks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fp_id,
                    arch_hash,
                    imgsz,
                    name,
                    json.dumps(arch, sort_keys=True),
                    json.dumps(units),
                    *timing_columns(timing),
                ),
            )

    def networks(self, fp_id: str) -> list[NetworkRow]:
        rows = self.conn.execute(
            "SELECT arch_hash, imgsz, name, units, median_ms, p10_ms, p90_ms, runs FROM networks "
            "WHERE fingerprint=? ORDER BY created",
            (fp_id,),
        ).fetchall()
        return [NetworkRow(h, s, n, json.loads(u), m, p10, p90, r) for h, s, n, u, m, p10, p90, r in rows]

    def has_network(self, fp_id: str, arch_hash: str, imgsz: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM networks WHERE fingerprint=? AND arch_hash=? AND imgsz=?",
            (fp_id, arch_hash, imgsz),
        ).fetchone()
        return row is not None

    def integrity(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])


class _Cursor:
    """A thin cursor wrapper that remembers the last statement's row count."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rowcount = 0

    def execute(self, sql: str, params: tuple = ()) -> None:
        self.rowcount = self.conn.execute(sql, params).rowcount
