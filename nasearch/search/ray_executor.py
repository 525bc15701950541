"""Trials as Ray tasks (`--executor ray [--address …]`), on a local Ray or a cluster of machines.

The driver runs the Optuna study exactly as the local executor does: it asks the study for a trial,
resolves the space (a resolution that breaks the space's constraints is told PRUNED here and never
reaches a worker), and submits the trial as a plain Ray task with the per-trial resources of
`executor.resources`, custom ones included (`{"CPU": 1, "T4": 1}` runs trials only on nodes that
advertise a T4). The worker re-opens that trial in the study and evaluates it (`candidate.evaluate`),
writing its attributes as it goes, so the promotion board and the duplicate memo are the study itself
(`StorageBoard`): every worker and a restarted driver see the same rungs. The driver tells the result.
Workers therefore reach the storage: on several machines that is a server (PostgreSQL), and paths in
the experiment (dataset, latency database) must exist on the workers.

A trial whose node or worker process dies is failed with the reason (`lost: …`) and its decisions are
queued again (`retry_of`), so the budget is still met once the resource is back.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import optuna

from nasearch.errors import InputError
from nasearch.search.candidate import Outcome, SearchContext, evaluate, rejection
from nasearch.search.chooser import OptunaChooser
from nasearch.search.compat import reopen_trial, trial_id
from nasearch.search.executors import MAX_REJECTIONS_IN_A_ROW, Budget, SearchAborted, check_failures, should_stop
from nasearch.search.experiment import LoadedExperiment, experiment_from_dict
from nasearch.search.record import TrialRecord, TrialRecorder, write
from nasearch.search.resume import INTERRUPTED, retry
from nasearch.search.study import (
    RunInfo,
    StorageBoard,
    enqueue_repair,
    load_study,
    quiet_optuna,
    tell,
)
from nasearch.space.decisions import ReplayChooser

POLL_SECONDS = 1.0
LOST = "lost: the Ray node or worker running this trial died"

_WORKER_CACHE: dict[str, Any] = {}


def _cached(key: str, make: Callable[[], Any]) -> Any:
    if key not in _WORKER_CACHE:
        _WORKER_CACHE[key] = make()
    return _WORKER_CACHE[key]


def run_trial(
    raw: dict, file: str, url: str, study_name: str, tid: int, params: dict, preset: str | None, threads: int
) -> dict[str, Any]:
    """One trial on a Ray worker: re-open it in the study, evaluate, return the outcome (attributes are
    already in the study)."""
    import torch

    torch.set_num_threads(max(1, threads))
    quiet_optuna()
    ctx: SearchContext = _cached(
        repr(("ctx", file, sorted(raw))), lambda: SearchContext.create(experiment_from_dict(raw, file))
    )
    study: optuna.Study = _cached(repr(("study", url, study_name)), lambda: load_study(url, study_name))
    trial = reopen_trial(study, tid)
    rec = TrialRecorder(trial)
    rec.set("worker", f"{socket.gethostname()}:{os.getpid()}")
    rec.set("worker_started", time.time())
    try:
        data = ctx.space.resolve(ReplayChooser(params))
        board = StorageBoard(study)
        outcome = evaluate(ctx, data, str(trial.number), rec, board, preset, memo=board)
    except InputError as exc:
        outcome = Outcome("fatal", reason=exc.line(), error=exc)
    rec.set("worker_finished", time.time())
    error = outcome.error
    return {
        "state": outcome.state,
        "values": list(outcome.values) if outcome.values else None,
        "constraints": outcome.constraints,
        "reason": outcome.reason,
        "input_error": [error.file, error.path, error.expected, error.found] if error else None,
    }


def _outcome(payload: dict[str, Any]) -> Outcome:
    values = payload["values"]
    error = InputError(*payload["input_error"]) if payload["input_error"] else None
    return Outcome(
        payload["state"], tuple(values) if values else None, dict(payload["constraints"]), payload["reason"], error
    )


def _check_resources(resources: dict[str, float], file: str) -> None:
    import ray

    have = ray.cluster_resources()
    for key, amount in resources.items():
        if have.get(key, 0.0) < amount:
            known = ", ".join(sorted(k for k in have if not k.startswith("node:")))
            raise InputError(
                file,
                f"executor.resources.{key}",
                f"a resource the Ray cluster has ({known})",
                f"{key}: {amount} (the cluster has {have.get(key, 0.0)})",
            )


def concurrency(resources: dict[str, float], cluster: dict[str, float]) -> int:
    """Trials that fit on the cluster at once: the scarcest resource decides."""
    fits = [int(cluster.get(k, 0.0) // v) for k, v in resources.items() if v > 0]
    return max(1, min(fits, default=int(cluster.get("CPU", 1))))


@contextlib.contextmanager
def ray_session(exp: LoadedExperiment) -> Iterator[None]:
    """Connect to (or start) Ray and check the per-trial resources before anything is written; shut
    down on exit only a Ray this function started."""
    import ray

    started_here = False
    with contextlib.redirect_stdout(sys.stderr):  # Ray prints cluster events (a node died) on stdout
        if not ray.is_initialized():
            os.environ.setdefault("RAY_DEDUP_LOGS", "0")
            ray.init(
                address=exp.spec.executor.address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                configure_logging=True,
            )
            started_here = True
        try:
            _check_resources({k: float(v) for k, v in exp.spec.executor.resources.items()}, exp.file)
            yield
        finally:
            if started_here:
                ray.shutdown()


class _Driver:
    """The trials in flight: asked in the study, running as Ray tasks."""

    def __init__(
        self, exp: LoadedExperiment, study: optuna.Study, info: RunInfo, ctx: SearchContext, budget: Budget
    ) -> None:
        import ray

        self.exp, self.study, self.info, self.ctx, self.budget = exp, study, info, ctx, budget
        resources = {k: float(v) for k, v in exp.spec.executor.resources.items()}
        self.threads = int(resources.get("CPU", 1) or 1)
        custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
        self.task = ray.remote(run_trial).options(
            num_cpus=resources.get("CPU", 1.0), num_gpus=resources.get("GPU", 0.0), resources=custom, max_retries=0
        )
        self.slots = exp.spec.executor.concurrent or concurrency(resources, ray.cluster_resources())
        self.running: dict[Any, optuna.Trial] = {}
        self.rejected_in_a_row = 0

    def fill(self) -> None:
        """Ask and submit trials until every slot is busy or the budget is covered."""
        while len(self.running) < self.slots and not should_stop(self.study, self.budget):
            trial = self.study.ask()
            data = self.ctx.space.resolve(OptunaChooser(trial))
            rejected = rejection(self.ctx.space, data, TrialRecorder(trial))
            if rejected is not None:
                enqueue_repair(self.study, self.ctx, tell(self.study, trial, rejected))
                self.rejected_in_a_row += 1
                if self.rejected_in_a_row > MAX_REJECTIONS_IN_A_ROW:
                    raise SearchAborted(
                        f"the sampler proposed {self.rejected_in_a_row} resolutions in a row "
                        f"that break the space's constraints (last: {rejected.reason})"
                    )
                continue
            self.rejected_in_a_row = 0
            ref = self.task.remote(
                self.exp.raw,
                self.exp.file,
                self.info.storage,
                self.info.study_name,
                trial_id(trial),
                dict(trial.params),
                TrialRecord.from_trial(trial, self.info.study_name).preset,
                self.threads,
            )
            self.running[ref] = trial

    def collect(self, timeout: float) -> None:
        """Tell every trial that finished (or was lost) within `timeout` seconds."""
        import ray

        done, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout)
        for ref in done:
            trial = self.running.pop(ref)
            try:
                outcome = _outcome(ray.get(ref))
            except ray.exceptions.RayTaskError as exc:  # our code raised on the worker: a failed candidate
                reason = f"worker: {' '.join(str(exc.cause).split())[:300]}"
                write(trial, failure=reason)
                outcome = Outcome("failed", reason=reason)
            except ray.exceptions.RayError as exc:  # the node or the worker process died: run it again
                reason = f"{LOST} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
                write(trial, failure=reason)
                tell(self.study, trial, Outcome("failed", reason=reason))
                retry(self.study, trial)
                check_failures(self.study, self.budget, Outcome("failed", reason=reason))
                continue
            tell(self.study, trial, outcome)
            if outcome.error is not None:  # the experiment is broken (fatal): exit 2
                raise outcome.error
            if outcome.state == "failed":
                check_failures(self.study, self.budget, outcome)

    def abandon(self) -> None:
        """Stop the tasks still running and fail their trials as interrupted (queued again, like a
        local trial interrupted by Ctrl-C)."""
        import ray

        for ref, trial in list(self.running.items()):
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            with contextlib.suppress(Exception):
                write(trial, failure=INTERRUPTED)
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                retry(self.study, trial)
        self.running.clear()


def run_ray(
    exp: LoadedExperiment,
    study: optuna.Study,
    info: RunInfo,
    ctx: SearchContext,
    budget: Budget,
    on_trial: Callable[[optuna.Study], None] | None = None,
) -> None:
    """Run trials as Ray tasks (inside `ray_session`) until the study holds `budget.target` complete trials."""
    driver = _Driver(exp, study, info, ctx, budget)
    try:
        driver.fill()
        while driver.running:
            driver.collect(POLL_SECONDS)
            driver.fill()
            if on_trial is not None:
                on_trial(study)
    finally:
        driver.abandon()
