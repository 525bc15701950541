"""Running trials: in this process, or in N local processes sharing one storage (`--workers N`).

Ray tasks live in `ray_executor`. Every executor stops once the study holds `target` complete trials
(several workers may overshoot by at most workers - 1), and gives up when more than `max_failures`
candidates failed in this session (a broken backend must not loop forever), or when the sampler keeps
proposing resolutions that break the space's constraints.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from nasearch.errors import InputError
from nasearch.search import record
from nasearch.search.candidate import Outcome, SearchContext
from nasearch.search.experiment import experiment_from_dict
from nasearch.search.study import load_study, quiet_optuna, run_one_trial, session_sampler

MAX_REJECTIONS_IN_A_ROW = 500
POLL_SECONDS = 1.0


class SearchAborted(RuntimeError):
    """The search cannot go on (too many failures); the message says why and names the last reason."""


@dataclass(frozen=True)
class Budget:
    target: int  # complete trials wanted in the study
    max_failures: int  # failed candidates tolerated in this session
    failed_before: int  # failed trials already in the study when this session started


def counts(study: optuna.Study) -> dict[TrialState, int]:
    out: dict[TrialState, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state] = out.get(t.state, 0) + 1
    return out


def complete_count(study: optuna.Study) -> int:
    return counts(study).get(TrialState.COMPLETE, 0)


def failed_count(study: optuna.Study) -> int:
    return sum(1 for r in record.records(study, (TrialState.FAIL,)) if not r.interrupted)


def should_stop(study: optuna.Study, budget: Budget) -> bool:
    c = counts(study)
    return c.get(TrialState.COMPLETE, 0) + c.get(TrialState.RUNNING, 0) >= budget.target


def check_failures(study: optuna.Study, budget: Budget, outcome: Outcome | None) -> None:
    failed = failed_count(study) - budget.failed_before
    if failed > budget.max_failures:
        last = outcome.reason if outcome else ""
        raise SearchAborted(
            f"{failed} candidates failed in this session (more than max_failures = "
            f"{budget.max_failures}); the last: {last}"
        )


def local_loop(
    study: optuna.Study, ctx: SearchContext, budget: Budget, on_trial: Callable[[optuna.Study], None] | None = None
) -> None:
    """Trials one after another in this process until the budget is met."""
    rejected_in_a_row = 0
    while not should_stop(study, budget):
        _, outcome = run_one_trial(study, ctx)
        if outcome.state == "fatal":
            assert outcome.error is not None
            raise outcome.error
        rejected_in_a_row = rejected_in_a_row + 1 if outcome.state in ("rejected", "screened") else 0
        if rejected_in_a_row > MAX_REJECTIONS_IN_A_ROW:
            raise SearchAborted(
                f"the sampler proposed {rejected_in_a_row} candidates in a row that break "
                f"the space's constraints or the latency screen (last: {outcome.reason})"
            )
        if outcome.state == "failed":
            check_failures(study, budget, outcome)
        if on_trial is not None:
            on_trial(study)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _worker_main(
    raw: dict, file: str, url: str, study_name: str, budget: Budget, index: int, threads: int, messages: Any
) -> None:
    """One process of `--workers N`: its own sampler seed, the shared storage, the same stop rule."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    import torch

    torch.set_num_threads(threads)
    quiet_optuna()
    try:
        exp = experiment_from_dict(raw, file)
        study = load_study(url, study_name)
        study.sampler = session_sampler(exp, study, worker=index + 1)
        local_loop(study, SearchContext.create(exp), budget)
        messages.put(("done", index, None))
    except InputError as exc:
        messages.put(("input", index, (exc.file, exc.path, exc.expected, exc.found)))
        sys.exit(2)
    except SearchAborted as exc:
        messages.put(("aborted", index, str(exc)))
        sys.exit(1)
    except KeyboardInterrupt:
        messages.put(("interrupted", index, None))
        sys.exit(130)
    except Exception:
        messages.put(("error", index, traceback.format_exc()))
        sys.exit(1)


def multiprocess(
    raw: dict,
    file: str,
    url: str,
    study_name: str,
    budget: Budget,
    workers: int,
    study: optuna.Study,
    on_poll: Callable[[optuna.Study], None] | None = None,
) -> None:
    """N spawned processes share the storage; this process only watches, and stops them on an error."""
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(raw, file, url, study_name, budget, i, threads, messages),
            name=f"nasearch-worker-{i}",
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    problem: tuple[str, Any] | None = None
    try:
        while any(p.is_alive() for p in procs) or not messages.empty():
            try:
                kind, _, payload = messages.get(timeout=POLL_SECONDS)
                if kind in ("input", "aborted", "error") and problem is None:
                    problem = (kind, payload)
                    for p in procs:
                        if p.is_alive():
                            p.terminate()
            except queue.Empty:
                pass
            if on_poll is not None:
                on_poll(study)
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=30)
    if problem is not None:
        kind, payload = problem
        if kind == "input":
            raise InputError(*payload)
        if kind == "aborted":
            raise SearchAborted(payload)
        lines = [ln for ln in str(payload).splitlines() if ln.strip()]
        error = RuntimeError(f"a worker failed: {lines[-1].strip() if lines else 'no message'}")
        error.add_note(str(payload))  # the worker's traceback, shown with --debug
        raise error
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise RuntimeError(f"worker processes ended with exit codes {bad}")
