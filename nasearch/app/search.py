"""`nasearch search`: set up (or resume) the study in RUN_DIR, run the executor, write the results."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from nasearch.errors import InputError, masked
from nasearch.search.candidate import SearchContext
from nasearch.search.executors import Budget, failed_count, local_loop, multiprocess
from nasearch.search.experiment import LoadedExperiment, load_experiment
from nasearch.search.progress import SearchProgress
from nasearch.search.ray_executor import ray_session, run_ray
from nasearch.search.results import Results, front_doc, preset_comparison, unmet_constraints, write_results
from nasearch.search.resume import RunLock, recover_interrupted
from nasearch.search.study import (
    RUN_FILE,
    RunInfo,
    create_study,
    load_study,
    quiet_optuna,
    session_sampler,
    storage_url,
)
from nasearch.space.memory import check_workers


@dataclass
class Overrides:
    """Command-line options that replace experiment fields."""

    trials: int | None = None
    sampler: str | None = None
    executor: str | None = None
    workers: int | None = None
    address: str | None = None
    seed: int | None = None
    storage: str | None = None

    def apply(self, exp: LoadedExperiment) -> LoadedExperiment:
        executor = {
            k: v
            for k, v in (("kind", self.executor), ("workers", self.workers), ("address", self.address))
            if v is not None
        }
        return exp.with_overrides(
            trials=self.trials, sampler=self.sampler, seed=self.seed, storage=self.storage, executor=executor or None
        )


def default_run_dir(exp: LoadedExperiment) -> Path:
    return Path("runs") / exp.spec.name


def _open(
    exp: LoadedExperiment, run_dir: Path, resume: bool, ctx: SearchContext
) -> tuple[optuna.Study, RunInfo, list[int]]:
    if resume:
        info = RunInfo.load(run_dir)
        if info.fingerprint != exp.fingerprint():
            raise InputError(
                exp.file,
                "<root>",
                f"the experiment {run_dir} was started with (space, "
                "objectives, constraints, dataset and presets unchanged), or a new --out",
                "a changed experiment",
            )
        study = load_study(info.storage, info.study_name)
        return study, info, recover_interrupted(study)
    if (run_dir / RUN_FILE).exists():  # finished or not, whatever the budget: only --resume continues it
        raise InputError(
            run_dir,
            "<dir>",
            "a new run directory (or --resume to continue this run, or to print its results when it is finished)",
            "an existing search run",
        )
    url = storage_url(exp, run_dir)
    study = create_study(exp, ctx, url)
    info = RunInfo(
        url, exp.spec.name, str(Path(exp.file).resolve()) if exp.file != "<memory>" else exp.file, exp.fingerprint()
    )
    info.save(run_dir)
    if Path(exp.file).is_file():
        (run_dir / "experiment.yaml").write_text(Path(exp.file).read_text())
    return study, info, []


def check_dataset(exp: LoadedExperiment) -> None:
    """Read both splits of the experiment's dataset and open their images: a broken `dataset.path` is refused
    before anything is written."""
    if exp.dataset_path is None:
        return
    from nasearch.data.images import check_split_images
    from nasearch.data.resolve import load_split

    for name in ("train", "val"):
        check_split_images(load_split(exp.dataset_path, name))


def check_resources(exp: LoadedExperiment, overrides: Overrides | None) -> None:
    """Local search processes bounded by the cores and the memory (each holds torch and a model)."""
    ex = exp.spec.executor
    if ex.kind == "local" and ex.workers > 1:
        from_flag = overrides is not None and overrides.workers is not None
        check_workers(
            ex.workers, "--workers" if from_flag else exp.file, "workers" if from_flag else "executor.workers"
        )


def run_search(
    experiment: str | Path | LoadedExperiment,
    out: Path | None = None,
    resume: bool = False,
    overrides: Overrides | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run (or continue) a search; return the summary that `--json` prints."""
    quiet_optuna()
    start = time.monotonic()
    exp = experiment if isinstance(experiment, LoadedExperiment) else load_experiment(experiment)
    if overrides is not None:
        exp = overrides.apply(exp)
    run_dir = out or default_run_dir(exp)
    check_resources(exp, overrides)
    ctx = SearchContext.create(exp)  # reads the space: a broken one is refused before anything is written
    check_dataset(exp)  # before the run directory or any trial exists
    with RunLock(run_dir), _executor_session(exp):
        study, info, retried = _open(exp, run_dir, resume, ctx)
        study.sampler = session_sampler(exp, study)
        budget = Budget(
            exp.spec.trials,
            exp.spec.max_failures if exp.spec.max_failures is not None else exp.spec.trials,
            failed_count(study),
        )
        ex = exp.spec.executor
        title = f"search {exp.spec.name}"
        try:
            with SearchProgress(exp.spec.trials, title) if show_progress else _Silent() as progress:
                progress.update(study)
                if ex.kind == "ray":
                    run_ray(exp, study, info, ctx, budget, on_trial=progress.update)
                elif ex.workers > 1:
                    multiprocess(
                        exp.raw,
                        exp.file,
                        info.storage,
                        info.study_name,
                        budget,
                        ex.workers,
                        study,
                        on_poll=progress.update,
                    )
                else:
                    local_loop(study, ctx, budget, on_trial=progress.update)
                progress.update(study)
        except BaseException:
            with contextlib.suppress(Exception):  # results so far, for `nasearch pareto` and --resume
                write_results(study, run_dir)
            raise
        res = write_results(study, run_dir)
    unmet = unmet_constraints(res)
    if unmet:  # an empty front because no architecture can meet a limit: say which and by how much
        raise InputError(
            exp.file,
            "constraints",
            f"limits some architecture of the space meets (no trial did, so the front is empty; results in {run_dir})",
            unmet,
        )
    return summary(res, run_dir, info, retried, time.monotonic() - start)


def summary(res: Results, run_dir: Path, info: RunInfo, retried: list[int], seconds: float) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "study": info.study_name,
        "storage": masked(info.storage),
        "trials": res.counts(),
        "retried": retried,
        "top_rung": res.rung,
        "front": front_doc(res, run_dir),
        "suite": [
            {
                "rank": i,
                "trial": e.trial,
                "target_ms": t,
                "latency_ms": e.latency_ms,
                "accuracy": e.accuracy,
                "accuracy_kind": e.accuracy_kind,
                "file": str(run_dir / "suite" / f"{i}_{e.arch_name}.yaml"),
            }
            for i, (e, t) in enumerate(res.suite, 1)
        ],
        "hypervolume_screen": res.hv_screen[-1] if res.hv_screen else 0.0,
        "hypervolume_final": res.hv_final[-1] if res.hv_final else None,
        "presets": preset_comparison(res.rows),
        "seconds": round(seconds, 1),
    }


def _executor_session(exp: LoadedExperiment) -> contextlib.AbstractContextManager:
    if exp.spec.executor.kind == "ray":
        return ray_session(exp)
    return contextlib.nullcontext()


class _Silent:
    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, study: optuna.Study) -> None:
        return None
