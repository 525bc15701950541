"""The live view of a running search (stderr): a progress bar and the best front so far.

On a terminal it redraws in place; elsewhere (logs, CI) it prints one line per finished trial.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import optuna
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nasearch.search.results import front, trial_rows

SHOWN = 8


class SearchProgress:
    def __init__(self, target: int, title: str) -> None:
        self.console = Console(stderr=True)
        self.live_mode = self.console.is_terminal
        self.target = target
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task(title, total=target, extra="")
        self.table = Table()
        self.live: Live | None = None
        self._seen: set[int] = set()
        self._start = time.monotonic()

    def __enter__(self) -> SearchProgress:
        if self.live_mode:
            self.live = Live(
                Group(self.progress, self.table), console=self.console, refresh_per_second=4, transient=False
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, study: optuna.Study) -> None:
        rows = trial_rows(study)
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        entries, _, rung = front(rows)
        extra = (
            f"failed {counts.get('failed', 0)} · rejected {counts.get('rejected', 0)} · "
            f"screened {counts.get('screened', 0)} · "
            f"front {len(entries)} (rung {rung})"
        )
        self.progress.update(self.task, completed=min(counts.get("complete", 0), self.target), extra=extra)
        table = Table(title="best front so far", title_justify="left", box=None, pad_edge=False)
        for col in ("trial", "latency ms", entries[0].accuracy_kind if entries else "accuracy", "M params", "name"):
            table.add_column(col, justify="right" if col != "name" else "left")
        step = max(1, len(entries) // SHOWN + (len(entries) % SHOWN > 0))
        for e in entries[::step]:
            table.add_row(
                str(e.trial),
                f"{e.latency_ms:.3f}",
                f"{e.accuracy:.4g}",
                f"{e.params / 1e6:.2f}",
                e.preset or e.arch_name,
            )
        self.table = table
        if self.live is not None:
            self.live.update(Group(self.progress, table))
            return
        for r in rows:
            if r["trial"] in self._seen or r["state"] in ("running", "waiting"):
                continue
            self._seen.add(r["trial"])
            print(self._line(r, extra), file=sys.stderr, flush=True)

    def _line(self, r: dict, extra: str) -> str:
        elapsed = time.monotonic() - self._start
        head = f"[{elapsed:7.1f}s] trial {r['trial']:>4} {r['state']:<9}"
        if r["state"] == "complete":
            acc = f"{r['accuracy_kind']} {r['accuracy']:.4g}" if r["accuracy"] is not None else ""
            lat = f"{r['latency_ms']:.3f} ms" if r["latency_ms"] is not None else ""
            dup = f" (= trial {r['duplicate_of']})" if r["duplicate_of"] is not None else ""
            who = r["preset"] or r["arch_name"]
            return f"{head} {who}{dup}: {lat}, {acc}, rung {r['fidelity']} | {extra}"
        reason = r["failure"] or r["rejected"] or r["screened"]
        return f"{head} {reason[:160]} | {extra}"
