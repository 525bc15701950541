"""The Optuna study behind a search: storage, sampler, presets first, and one trial from ask to tell.

Two objectives, `latency_ms` (minimise) and the screening accuracy (maximise): the values every
candidate gets, so the sampler learns from all of them. Promoted rungs are recorded on the trial
(`rungs` user attribute) and the front is read at the highest rung (see `results`). Constraints are set
with `Trial.set_constraint` (Optuna 5), which NSGA-II/III, TPE and GP all honour; a resolution that
breaks the space's own constraints is told PRUNED with a positive `space` constraint, so TPE learns to
avoid it without a made-up objective value; a candidate the latency screen skipped (`screen`) is told
PRUNED with its predicted latency excess, so TPE learns where the infeasible region is from it too.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasearch import atomic
from nasearch.errors import InputError, masked
from nasearch.search import promotion, screen
from nasearch.search.candidate import Outcome, Prior, SearchContext, evaluate
from nasearch.search.chooser import OptunaChooser, repair
from nasearch.search.experiment import LoadedExperiment
from nasearch.search.record import TrialRecord, TrialRecorder, enqueue, records, study_source, write_meta
from nasearch.search.resume import INTERRUPTED, retry
from nasearch.search.storage import open_storage, sqlite_file
from nasearch.space.arch import load_presets, presets_dir
from nasearch.space.space import Space, decision_values

DIRECTIONS = ["minimize", "maximize"]
REPAIR_SEED_STRIDE = 1_000_033

RUN_FILE = "run.json"


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def storage_url(exp: LoadedExperiment, run_dir: Path) -> str:
    if exp.spec.storage:
        url = exp.spec.storage
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url.removeprefix("sqlite:///")
            url = f"sqlite:///{(exp.base / rel).resolve()}"
        return url
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def make_sampler(
    name: str,
    seed: int,
    population_size: int | None = None,
    n_startup_trials: int | None = None,
    exp: LoadedExperiment | None = None,
) -> optuna.samplers.BaseSampler:
    """Samplers by the experiment's name; `motpe` is TPE on several objectives (Optuna's MOTPE); `surrogate`
    proposes whole architectures of the experiment's space (`nasearch.search.surrogate`), so it needs `exp`."""
    quiet_optuna()
    if name == "surrogate":
        if exp is None:
            raise InputError("--sampler", "sampler", "an experiment for the surrogate sampler", "none")
        from nasearch.search.surrogate import for_experiment

        return for_experiment(exp, seed, n_startup_trials)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population_size or 16, seed=seed)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(population_size=population_size or 16, seed=seed)
    if name in ("tpe", "motpe"):
        startup = 10 if n_startup_trials is None else n_startup_trials
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=startup
        )
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials or 10)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InputError("--sampler", "sampler", "nsga2, nsga3, tpe, motpe, gp, surrogate or random", repr(name))


def experiment_sampler(exp: LoadedExperiment) -> optuna.samplers.BaseSampler:
    opts = exp.spec.sampler_options
    return make_sampler(exp.spec.sampler, exp.spec.seed, opts.population_size, opts.n_startup_trials, exp)


SESSION_SEED_STRIDE = 1_000_003


def session_sampler(exp: LoadedExperiment, study: optuna.Study, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The experiment's sampler, seeded by the seed and by how far the study has got, so a resumed
    search does not replay the proposals it already made (and a fresh one is reproducible); each
    worker of `--workers N` gets its own stream."""
    done = sum(1 for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING)
    opts = exp.spec.sampler_options
    return make_sampler(
        exp.spec.sampler,
        exp.spec.seed + SESSION_SEED_STRIDE * done + 7919 * worker,
        opts.population_size,
        opts.n_startup_trials,
        exp,
    )


@dataclass
class RunInfo:
    """What `RUN_DIR/run.json` holds: how to find the study again (for --resume and `nasearch pareto`)."""

    storage: str
    study_name: str
    experiment: str
    fingerprint: str

    def save(self, run_dir: Path) -> None:
        """Write run.json with an SQLite storage relative to `run_dir`, so the run can be copied or moved."""
        doc = {**self.__dict__, "storage": relative_storage(self.storage, run_dir)}
        atomic.write_text(run_dir / RUN_FILE, json.dumps(doc, indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> RunInfo:
        """The run's description, its storage resolved against `run_dir` (wherever the run now is)."""
        path = run_dir / RUN_FILE
        if not path.is_file():
            raise InputError(run_dir, "<dir>", f"a search run directory (with {RUN_FILE})", "none")
        try:
            doc = json.loads(path.read_text())
            info = cls(**{k: doc[k] for k in ("storage", "study_name", "experiment", "fingerprint")})
            if not isinstance(info.storage, str):
                raise TypeError("storage")
        except (ValueError, KeyError, TypeError):
            raise InputError(
                path, "<root>", "the run description written by `nasearch search`", "an unreadable file"
            ) from None
        except OSError as exc:
            raise InputError(path, "<file>", "a readable run description", type(exc).__name__) from None
        info.storage = resolve_storage(info.storage, run_dir)
        return info


def relative_storage(url: str, run_dir: Path) -> str:
    """`sqlite:///REL` with REL relative to the run directory; any other URL (a server) as it is."""
    path = sqlite_file(url)
    if path is None or not path.is_absolute():
        return url
    return f"sqlite:///{Path(os.path.relpath(path, run_dir.absolute())).as_posix()}"


def resolve_storage(url: str, run_dir: Path) -> str:
    """The absolute URL of a run's storage. An absolute `…/study.db` of a run written before storages were
    relative is the run's own `study.db` when the run has one (it was copied or moved since)."""
    path = sqlite_file(url)
    if path is None:
        return url
    if not path.is_absolute():
        return f"sqlite:///{os.path.normpath(run_dir.absolute() / path)}"
    own = run_dir / "study.db"
    if path.name == "study.db" and own.is_file() and path != own.absolute():
        return f"sqlite:///{own.absolute()}"
    return url


def study_meta(exp: LoadedExperiment, ctx: SearchContext) -> dict[str, Any]:
    acc = exp.spec.objectives.accuracy
    raw = {**exp.raw, "storage": masked(exp.raw["storage"])} if exp.raw.get("storage") else exp.raw
    return {
        "experiment": raw,
        "experiment_file": exp.file,
        "fingerprint": exp.fingerprint(),
        "space": str(exp.space_path),
        "space_name": ctx.space.name,
        "imgsz": ctx.imgsz,
        "nc": ctx.nc,
        "latency_imgsz": ctx.latency.imgsz,
        "rungs": [r.proxy for r in [acc.screen, *acc.rungs]],
        "constraints": exp.spec.constraints.limits(),
        "trials": exp.spec.trials,
    }


def create_study(exp: LoadedExperiment, ctx: SearchContext, url: str, sampler: Any = None) -> optuna.Study:
    """A new study (an existing one of the same name in the storage is an input error: use --resume)."""
    storage = open_storage(url)
    name = exp.spec.name
    if any(s.study_name == name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)):
        raise InputError(
            masked(url), "storage", f"a storage without a study named {name!r} (or pass --resume)", "an existing study"
        )
    study = optuna.create_study(
        storage=storage, study_name=name, directions=DIRECTIONS, sampler=sampler or experiment_sampler(exp)
    )
    study.set_metric_names(["latency_ms", exp.spec.objectives.accuracy.screen.proxy])
    write_meta(study, study_meta(exp, ctx))
    enqueue_presets(study, exp, ctx)
    return study


def load_study(url: str, name: str, sampler: Any = None, readonly: bool = False) -> optuna.Study:
    """The study `name` at `url`; `readonly` for commands that only read (nothing is created or changed)."""
    storage = open_storage(url, readonly)
    try:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        raise InputError(masked(url), "storage", f"a storage holding the study {name!r}", "no such study") from None


def enqueue_presets(study: optuna.Study, exp: LoadedExperiment, ctx: SearchContext) -> list[str]:
    """Presets inside the space become the first trials, so the front starts at the published models."""
    chosen = exp.spec.presets
    if chosen is False:
        return []
    presets = load_presets(space_presets_dir(ctx.space))
    inside = ctx.space.presets_inside()
    names = [n for n in inside if chosen is True or n in chosen]
    out = []
    for name in names:
        values = decision_values(ctx.space, presets[name])
        if values is not None:
            enqueue(study, values, preset=name)
            out.append(name)
    return out


def space_presets_dir(space: Space) -> Path:
    """The presets a space is compared with: `presets/` beside the space file, else the shipped ones."""
    return space._presets_dir or presets_dir()


class StorageBoard:
    """Rung results read straight from the study: every running or finished trial's `rungs` attribute."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    def points(self, rung: int) -> dict[str, promotion.Point]:
        out: dict[str, promotion.Point] = {}
        for r in records(self.study, (TrialState.COMPLETE, TrialState.RUNNING), ordered=True):
            if r.has("duplicate_of"):  # the original already stands for this architecture
                continue
            doc = r.rung(rung)
            if doc is not None:
                out[str(r.number)] = (float(doc.latency_ms), float(doc.accuracy))
        return out

    def record(self, key: str, rung: int, point: promotion.Point, feasible: bool) -> None:
        """Nothing to do: the trial's recorder already wrote the rung into its attributes."""

    def measured(self) -> list[screen.Measured]:
        """The study's candidates with a latency measured at screening, oldest first (the screen's data)."""
        out = []
        for r in records(self.study, (TrialState.COMPLETE,), ordered=True):
            if r.has("duplicate_of") or not r.screen_latency_measured or r.convs is None:
                continue
            if r.gflops is None or r.screen_latency_ms is None:
                raise InputError(
                    study_source(self.study.study_name),
                    f"trials[{r.number}]",
                    "gflops and screen_latency_ms beside screen_latency_measured",
                    "a trial without them",
                )
            seen = r.latency_screen
            out.append(
                screen.Measured(
                    float(r.gflops),
                    int(r.convs),
                    float(r.screen_latency_ms),
                    seen.predicted_ms if seen is not None else None,
                    str(seen.method or "") if seen is not None else "",
                )
            )
        return out

    def lookup(self, arch_hash: str) -> Prior | None:
        for r in records(self.study, (TrialState.COMPLETE,), ordered=True):
            if r.arch_hash == arch_hash and r.values is not None:
                return Prior(r.original, (r.values[0], r.values[1]), dict(r.constraints), r.attrs())
        return None


def tell(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> optuna.trial.FrozenTrial:
    for key, value in outcome.constraints.items():
        trial.set_constraint(key, value)
    if outcome.state == "complete":
        return study.tell(trial, list(outcome.values or ()))
    if outcome.state in ("rejected", "screened"):
        return study.tell(trial, state=TrialState.PRUNED)
    return study.tell(trial, state=TrialState.FAIL)


def run_one_trial(study: optuna.Study, ctx: SearchContext) -> tuple[optuna.trial.FrozenTrial, Outcome]:
    """Ask, evaluate, tell. An interrupt marks the trial failed before it propagates."""
    trial = study.ask()
    rec = TrialRecorder(trial)
    rec.set("worker", f"{socket.gethostname()}:{os.getpid()}")
    try:
        data = ctx.space.resolve(OptunaChooser(trial))
        preset = TrialRecord.from_trial(trial, study.study_name).preset
        board = StorageBoard(study)
        outcome = evaluate(ctx, data, str(trial.number), rec, board, preset, memo=board)
    except BaseException:  # an interrupt (or the storage failing): retried on --resume
        rec.set("failure", INTERRUPTED)
        study.tell(trial, state=TrialState.FAIL)
        retry(study, trial)
        raise
    frozen = tell(study, trial, outcome)
    if outcome.state == "rejected" and "space" in outcome.constraints:  # memory: nothing to repair
        enqueue_repair(study, ctx, frozen)
    return frozen, outcome


def enqueue_repair(study: optuna.Study, ctx: SearchContext, rejected: optuna.trial.FrozenTrial) -> None:
    """Queue the nearest feasible resolution of a rejected proposal as the next trial (`repair_of`)."""
    fixed = repair(ctx.space, dict(rejected.params), ctx.exp.spec.seed * REPAIR_SEED_STRIDE + rejected.number)
    if fixed is not None:
        enqueue(study, fixed, repair_of=rejected.number)
