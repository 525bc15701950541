"""Trials as Ray Tune trials (`--executor ray [--address …]`), on a local or remote Ray cluster.

The driver keeps the Optuna study: Ray Tune's `OptunaSearch` asks it for each trial (define-by-run
over the space, the experiment's sampler, the same storage), so the study is the one a local search
would write. Resolutions that break the space's constraints are told PRUNED on the driver and never
reach a worker. Workers evaluate candidates (`candidate.evaluate`) with the per-trial resources of
`executor.resources`, custom ones included (e.g. `{"CPU": 1, "T4": 1}` runs latency only on nodes that
advertise a T4), and send back every attribute; the driver writes them on the trial before telling
it. Promotion between rungs and the duplicate memo live in a Ray actor seeded from the study, so
workers on other machines never need the storage. Paths in the experiment (dataset, latency
database) must exist on the workers.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasearch.errors import InputError
from nasearch.search.candidate import DictRecorder, Outcome, Prior, SearchContext, evaluate
from nasearch.search.chooser import OptunaChooser
from nasearch.search.executors import Budget, SearchAborted, check_failures, counts
from nasearch.search.experiment import LoadedExperiment, experiment_from_dict
from nasearch.search.promotion import MemoryBoard, Point
from nasearch.search.storage import open_storage
from nasearch.search.study import RunInfo, enqueue_repair, session_sampler, tell
from nasearch.space.decisions import ReplayChooser

PAYLOAD = "nasearch_payload"
METRICS = ["latency_ms", "accuracy"]
MODES = ["min", "max"]
MAX_REJECTIONS_PER_SUGGEST = 500
ROUNDS = 50


class Ledger:
    """The state workers share through an actor: rung results for promotion, and finished results."""

    def __init__(self, seed_points: dict[int, dict[str, Point]], priors: dict[str, Prior]) -> None:
        self.board = MemoryBoard()
        for rung, pts in seed_points.items():
            for key, point in pts.items():
                self.board.record(key, rung, point, True)
        self.priors = dict(priors)

    def points(self, rung: int) -> dict[str, Point]:
        return self.board.points(rung)

    def record(self, key: str, rung: int, point: Point, feasible: bool) -> None:
        self.board.record(key, rung, point, feasible)

    def lookup(self, arch_hash: str) -> Prior | None:
        return self.priors.get(arch_hash)

    def remember(self, arch_hash: str, prior: Prior) -> None:
        self.priors.setdefault(arch_hash, prior)


class _RemoteBoard:
    """The worker's view of the ledger actor (promotion board and memo)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def points(self, rung: int) -> dict[str, Point]:
        import ray

        return ray.get(self.actor.points.remote(rung))

    def record(self, key: str, rung: int, point: Point, feasible: bool) -> None:
        import ray

        ray.get(self.actor.record.remote(key, rung, point, feasible))

    def lookup(self, arch_hash: str) -> Prior | None:
        import ray

        return ray.get(self.actor.lookup.remote(arch_hash))


def _seed_ledger(study: optuna.Study) -> tuple[dict[int, dict[str, Point]], dict[str, Prior]]:
    points: dict[int, dict[str, Point]] = {}
    priors: dict[str, Prior] = {}
    for t in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        for doc in t.user_attrs.get("rungs", []):
            if doc.get("feasible") and "duplicate_of" not in t.user_attrs:
                points.setdefault(int(doc["rung"]), {})[str(t.number)] = (float(doc["latency_ms"]),
                                                                          float(doc["accuracy"]))
        h = t.user_attrs.get("arch_hash")
        if h and t.values is not None and h not in priors:
            priors[h] = Prior(int(t.user_attrs.get("duplicate_of", t.number)), (t.values[0], t.values[1]),
                              dict(t.constraints), dict(t.user_attrs))
    return points, priors


_WORKER_CTX: dict[str, SearchContext] = {}


def _context(raw: dict, file: str) -> SearchContext:
    key = repr((file, sorted(raw)))
    if key not in _WORKER_CTX:
        _WORKER_CTX[key] = SearchContext.create(experiment_from_dict(raw, file))
    return _WORKER_CTX[key]


def _trainable(config: dict, raw: dict, file: str, ledger: Any, threads: int) -> None:
    """One Tune trial: replay the decisions, evaluate, report everything back to the driver."""
    import torch
    from ray import tune

    torch.set_num_threads(max(1, threads))
    started = time.time()
    params = {k: v for k, v in config.items() if not k.startswith("__")}
    rec = DictRecorder()
    try:
        ctx = _context(raw, file)
        data = ctx.space.resolve(ReplayChooser(params))
        board = _RemoteBoard(ledger)
        outcome = evaluate(ctx, data, str(config["__number"]), rec, board, config.get("__preset"), memo=board)
    except InputError as exc:
        outcome = Outcome("fatal", reason=exc.line(), error=exc)
    rec.set("worker", f"{socket.gethostname()}:{os.getpid()}")
    rec.set("worker_started", started)
    rec.set("worker_finished", time.time())
    values = outcome.values or (math.nan, math.nan)
    error = outcome.error
    payload = {"state": outcome.state, "reason": outcome.reason, "attrs": rec.attrs,
               "constraints": outcome.constraints,
               "input_error": [error.file, error.path, error.expected, error.found] if error else None}
    # one JSON string: Tune flattens nested result dicts
    tune.report({"latency_ms": values[0], "accuracy": values[1], PAYLOAD: json.dumps(payload)})


def _make_searcher(study: optuna.Study, ctx: SearchContext, ledger: Any, storage: Any,
                   on_trial: Callable[[optuna.Study], None] | None) -> Any:
    from ray.tune.search.optuna import OptunaSearch

    class StudySearcher(OptunaSearch):
        """OptunaSearch on our study: rejections stay on the driver; workers' attributes land on trials."""

        fatal: InputError | None = None
        aborted: str | None = None
        hooks: dict[str, Any] = {}

        def __getstate__(self) -> dict:
            """Tune pickles its searcher for experiment restore; the live hooks stay on the driver."""
            return {k: v for k, v in self.__dict__.items() if k not in ("hooks", "_space")}

        def save(self, checkpoint_path: str) -> None:
            """Nothing to checkpoint: the Optuna study is the state, and `--resume` restores from it."""
            Path(checkpoint_path).write_text("state lives in the Optuna study\n")

        def suggest(self, trial_id: str) -> dict | None:
            for _ in range(MAX_REJECTIONS_PER_SUGGEST):
                config = super().suggest(trial_id)
                ot_trial = self._ot_trials[trial_id]
                data = ctx.space.resolve(ReplayChooser(dict(ot_trial.params)))
                violations = ctx.space.violations(data)
                if not violations:
                    config["__number"] = ot_trial.number
                    config["__preset"] = ot_trial.user_attrs.get("preset")
                    return config
                ot_trial.set_user_attr("rejected", f"space constraint: {violations[0]}")
                rejected = Outcome("rejected", constraints={"space": float(len(violations))})
                frozen = tell(self._ot_study, ot_trial, rejected)
                enqueue_repair(self._ot_study, ctx, frozen)
                del self._ot_trials[trial_id]
            self.aborted = "the sampler keeps proposing resolutions that break the space's constraints"
            return None

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            if result and PAYLOAD in result:
                payload = json.loads(result[PAYLOAD])
                for key, value in payload["attrs"].items():
                    ot_trial.set_user_attr(key, value)
                state = payload["state"]
                values = (result["latency_ms"], result["accuracy"]) if state == "complete" else None
                outcome = Outcome(state, values, dict(payload["constraints"]), payload["reason"])
                if state == "fatal" and self.fatal is None:
                    self.fatal = InputError(*payload["input_error"])
            else:
                ot_trial.set_user_attr("failure", "worker: the Ray trial ended without a result "
                                                  "(see RUN_DIR/ray)")
                outcome = Outcome("failed", reason="worker error")
            frozen = tell(self._ot_study, ot_trial, outcome)
            self._completed_trials.add(trial_id)
            h = frozen.user_attrs.get("arch_hash")
            if outcome.state == "complete" and h and frozen.values is not None:
                import ray

                prior = Prior(int(frozen.user_attrs.get("duplicate_of", frozen.number)),
                              (frozen.values[0], frozen.values[1]), dict(frozen.constraints),
                              dict(frozen.user_attrs))
                ray.get(ledger.remember.remote(h, prior))
            if self.hooks.get("on_trial") is not None:
                self.hooks["on_trial"](study)

    def space_fn(trial: Any) -> None:
        ctx.space.resolve(OptunaChooser(trial))

    searcher = StudySearcher(space=space_fn, metric=METRICS, mode=MODES, sampler=study.sampler,
                             storage=storage, study_name=study.study_name)
    searcher.hooks = {"on_trial": on_trial}
    return searcher


def _check_resources(resources: dict[str, float], file: str) -> None:
    import ray

    have = ray.cluster_resources()
    for key, amount in resources.items():
        if have.get(key, 0.0) < amount:
            known = ", ".join(sorted(k for k in have if not k.startswith("node:")))
            raise InputError(file, f"executor.resources.{key}", f"a resource the Ray cluster has ({known})",
                             f"{key}: {amount} (the cluster has {have.get(key, 0.0)})")


@contextlib.contextmanager
def ray_session(exp: LoadedExperiment) -> Iterator[None]:
    """Connect to (or start) Ray and check the per-trial resources before anything is written; shut
    down on exit only a Ray this function started."""
    import ray

    started_here = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        with contextlib.redirect_stdout(sys.stderr):
            ray.init(address=exp.spec.executor.address, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=True)
        started_here = True
    try:
        _check_resources({k: float(v) for k, v in exp.spec.executor.resources.items()}, exp.file)
        yield
    finally:
        if started_here:
            ray.shutdown()


def run_ray(exp: LoadedExperiment, study: optuna.Study, info: RunInfo, ctx: SearchContext, budget: Budget,
            run_dir: Path, on_trial: Callable[[optuna.Study], None] | None = None) -> None:
    """Run trials on Ray Tune (inside `ray_session`) until the study holds `budget.target` complete trials."""
    import ray
    from ray import tune

    ex = exp.spec.executor
    resources = {k: float(v) for k, v in ex.resources.items()}
    ledger_cls = ray.remote(num_cpus=0)(Ledger)
    for _ in range(ROUNDS):
        c = counts(study)
        remaining = budget.target - c.get(TrialState.COMPLETE, 0)
        if remaining <= 0:
            break
        ledger = ledger_cls.remote(*_seed_ledger(study))
        study.sampler = session_sampler(exp, study)
        searcher = _make_searcher(study, ctx, ledger, open_storage(info.storage), on_trial)
        trainable = tune.with_parameters(_trainable, raw=exp.raw, file=exp.file, ledger=ledger,
                                         threads=int(resources.get("CPU", 1) or 1))
        trainable = tune.with_resources(trainable, tune.PlacementGroupFactory([resources]))
        concurrent = ex.concurrent or max(1, int(ray.cluster_resources().get("CPU", 1)
                                                 // max(resources.get("CPU", 1), 1)))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining,
                                        max_concurrent_trials=concurrent),
            run_config=tune.RunConfig(name=f"{info.study_name}-{int(time.time())}",
                                      storage_path=str((run_dir / "ray").resolve()), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
        with contextlib.redirect_stdout(sys.stderr):
            tuner.fit()
        ray.kill(ledger)
        if searcher.fatal is not None:
            raise searcher.fatal
        if searcher.aborted:
            raise SearchAborted(searcher.aborted)
        check_failures(study, budget, None)
