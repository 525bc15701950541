"""The experiment file (`experiments/*.yaml`): what to search, how to score it, and where to run.

Every field is checked by pydantic through `nasearch.validation.validate_model`, so a malformed file ends
in one `error: FILE: field.path: expected …, found …` line (exit 2). Relative paths inside an experiment
(space, dataset, latency database, storage) are read relative to the experiment file's folder, falling
back to the package's shipped data (`nasearch.resources`); `space:` may be a shipped space's bare name.
See `experiments/README.md` for the schema.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nasearch import yamlio
from nasearch.envpaths import env_path
from nasearch.errors import InputError
from nasearch.resources import resolve_named, shipped
from nasearch.validation import Imgsz, validate_model

SAMPLERS = ("nsga2", "nsga3", "tpe", "motpe", "gp", "surrogate", "random")
DEFAULT_SAMPLER = "surrogate"
EXPERIMENTS_ENV = "NASEARCH_EXPERIMENTS"

PositiveInt = Annotated[int, Field(ge=1)]
BudgetValue = int | float | str | bool


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticData(Strict):
    """The synthetic dataset, generated on first use (no download)."""

    images: Annotated[int, Field(ge=2, le=1_000_000)] = 400
    imgsz: Annotated[int, Field(ge=64, le=4096)] = 320
    seed: int = 0
    cache: str | None = None  # where to keep it; default: $NASEARCH_CACHE or ~/.cache/nasearch


class TreesData(Strict):
    """The trees set (`nasearch data trees`), written on first use from the deepforest 2.1.0 wheel."""

    tile: Annotated[int, Field(ge=32, le=4096)] = 128
    overlap: Annotated[int, Field(ge=0, le=4095)] = 0
    wheel: str | None = None  # default: the installed deepforest 2.1.0 distribution
    cache: str | None = None  # where to keep it; default: $NASEARCH_CACHE or ~/.cache/nasearch


class DatasetSpec(Strict):
    path: str | None = None  # a dataset directory, data.yaml or COCO json; None → the synthetic set
    synthetic: SyntheticData = SyntheticData()
    trees: TreesData | None = None  # the trees set instead of the synthetic one

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if self.path and self.trees is not None:
            raise ValueError("either `path` or `trees`, not both")
        return self


class LatencySpec(Strict):
    """Latency of each candidate: measured on this machine, predicted from a database, or a target model."""

    source: Literal["measure", "database", "target"] = "measure"
    backend: Literal["onnxruntime", "torch", "tensorrt"] = "onnxruntime"
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    imgsz: Imgsz | None = None  # default: the experiment's imgsz
    batch: Annotated[int, Field(ge=1, le=1024)] = 1
    threads: Annotated[int, Field(ge=1, le=512)] | None = None
    db: str | None = None  # source: database
    target: Literal["t4-tensorrt"] | None = None  # source: target
    measure_promoted: bool = False  # re-measure candidates promoted past screening (source != measure)
    # hybrid INT8 on the target: convolutions kept in FP16, module paths or glob patterns ("head.cls*")
    float_layers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _source_needs(self) -> LatencySpec:
        if self.source == "database" and not self.db:
            raise ValueError("a `db` path with source: database")
        if self.source == "target" and not self.target:
            raise ValueError("a `target` (t4-tensorrt) with source: target")
        if self.float_layers and (self.source != "target" or self.precision != "int8"):
            raise ValueError("`float_layers` (hybrid INT8) only with source: target and precision: int8")
        return self


class ProxySpec(Strict):
    """One accuracy fidelity: a registered proxy and its budget (passed to it as keyword arguments)."""

    proxy: str
    budget: dict[str, BudgetValue] = Field(default_factory=dict)


class AccuracySpec(Strict):
    """Screening of every candidate, then successively promoted rungs (non-dominated rank, keep 1/eta)."""

    screen: ProxySpec = ProxySpec(proxy="flops")  # the best-supported signal: benchmarks/README.md, proxy trust
    rungs: list[ProxySpec] = Field(default_factory=list, max_length=8)
    eta: Annotated[float, Field(gt=1.0, le=100.0)] = 3.0


class ObjectivesSpec(Strict):
    latency: LatencySpec = LatencySpec()
    accuracy: AccuracySpec = AccuracySpec()


class ScaleSpec(Strict):
    """Widths and depths of every candidate scaled (e.g. to search a CPU-sized version of a space)."""

    width: Annotated[float, Field(gt=0, le=4)] = 1.0
    depth: Annotated[float, Field(gt=0, le=4)] = 1.0
    head_width: Annotated[float, Field(gt=0, le=4)] | None = None  # the head's widths; default `width`

    @property
    def identity(self) -> bool:
        return self.width == 1.0 and self.depth == 1.0 and self.head_width in (None, 1.0)


class ConstraintsSpec(Strict):
    """Upper limits; a candidate over any of them is infeasible: never promoted, never on the front."""

    latency_ms: Annotated[float, Field(gt=0)] | None = None
    params_m: Annotated[float, Field(gt=0)] | None = None  # millions of parameters (training form)
    gflops: Annotated[float, Field(gt=0)] | None = None  # of the fused model at the latency imgsz

    def limits(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class LatencyScreenSpec(Strict):
    """Skip measuring candidates whose predicted latency is clearly over `constraints.latency_ms`
    (`nasearch.search.screen`); on by default whenever that limit is set and latency is measured."""

    enabled: bool = True
    min_history: Annotated[int, Field(ge=3, le=10_000)] = 8  # measured candidates before anything is skipped
    min_margin: Annotated[float, Field(ge=0, le=10)] = 0.15  # the margin never goes below this
    max_margin: Annotated[float, Field(gt=0, le=100)] = 1.0  # a predictor needing more is not used


class SamplerOptions(Strict):
    population_size: Annotated[int, Field(ge=2, le=10_000)] | None = None  # nsga2 / nsga3
    n_startup_trials: Annotated[int, Field(ge=0, le=10_000)] | None = None  # tpe / gp


class ExecutorSpec(Strict):
    kind: Literal["local", "ray"] = "local"
    workers: Annotated[int, Field(ge=1, le=1024)] = 1  # local: processes sharing the storage
    address: str | None = None  # ray: cluster address (None: start a local Ray)
    resources: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: {"CPU": 1.0})
    concurrent: Annotated[int, Field(ge=1, le=4096)] | None = None  # ray: trials at once


class SuiteSpec(Strict):
    """The delivered models: K models spread over the front, or one per explicit latency target."""

    models: Annotated[int, Field(ge=1, le=64)] | None = None  # default 3 when no targets are given
    latency_targets_ms: list[Annotated[float, Field(gt=0)]] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SuiteSpec:
        if self.latency_targets_ms is not None and len(self.latency_targets_ms) == 0:
            raise ValueError("a non-empty list of latency targets")
        if self.latency_targets_ms is not None and self.models is not None:
            raise ValueError("either `models` or `latency_targets_ms`, not both")
        return self

    def model_count(self) -> int | None:
        return None if self.latency_targets_ms else (self.models or 3)


class Experiment(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    description: str = ""
    space: str
    imgsz: Imgsz | None = None  # resolution of every candidate (default: the space's)
    scale: ScaleSpec = ScaleSpec()  # applied to every candidate and preset (nasearch.proxy.scale)
    nc: Annotated[int, Field(ge=1, le=10_000)] | None = None  # default: the dataset's classes if a proxy
    dataset: DatasetSpec = DatasetSpec()
    objectives: ObjectivesSpec = ObjectivesSpec()
    constraints: ConstraintsSpec = ConstraintsSpec()
    latency_screen: LatencyScreenSpec = LatencyScreenSpec()  # what gets measured: not in the fingerprint
    presets: bool | list[str] = True  # enqueue the presets inside the space first (all, none, or these)
    sampler: Literal[SAMPLERS] = DEFAULT_SAMPLER  # type: ignore[valid-type]
    sampler_options: SamplerOptions = SamplerOptions()
    trials: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    max_failures: Annotated[int, Field(ge=0)] | None = None  # default: as many as `trials`
    seed: int = 0
    storage: str | None = None  # any Optuna storage URL; default sqlite:///RUN_DIR/study.db
    executor: ExecutorSpec = ExecutorSpec()
    suite: SuiteSpec = SuiteSpec()


def _root_for(file: Path) -> Path:
    return file.resolve().parent


def resolve_path(ref: str, base: Path) -> Path:
    """A path in an experiment: absolute, else relative to the experiment's folder, else to the shipped data
    (whose folders mirror a checkout's: `search_spaces/`, `experiments/`, `latency_db/`)."""
    p = Path(os.path.expanduser(os.path.expandvars(ref)))
    if p.is_absolute():
        return p
    for root in (base, shipped()):
        if (root / p).exists():
            return (root / p).resolve()
    return (base / p).resolve()


def experiments_dir() -> Path:
    return env_path(EXPERIMENTS_ENV, shipped("experiments"))


def resolve_experiment_path(ref: str | Path) -> Path:
    """An experiment argument is a file, or the name of a shipped experiment (e.g. `quickstart`)."""
    return resolve_named(ref, experiments_dir())


class LoadedExperiment:
    """A validated experiment with its paths resolved, and the file it came from."""

    def __init__(self, spec: Experiment, file: str, raw: dict[str, Any]) -> None:
        self.spec = spec
        self.file = file
        self.raw = raw
        base = _root_for(Path(file)) if file != "<memory>" else Path.cwd()
        self.base = base
        from nasearch.space.space import resolve_space_path  # keeps nasearch --help from importing the DSL

        space = resolve_path(spec.space, base)
        self.space_path = space if space.exists() else resolve_space_path(spec.space).resolve()
        data = spec.dataset.path
        self.dataset_path = resolve_path(data, base) if data else None
        trees = spec.dataset.trees
        self.trees_wheel = resolve_path(trees.wheel, base) if trees is not None and trees.wheel else None
        db = spec.objectives.latency.db
        self.latency_db = resolve_path(db, base) if db else None

    def fingerprint(self) -> str:
        """What a resumed run must share with the original: everything that defines the objective."""
        keep = self.spec.model_dump(
            include={"space", "imgsz", "scale", "nc", "dataset", "objectives", "constraints", "presets"}
        )
        if keep["dataset"].get("trees") is None:  # runs made before the trees set keep their fingerprint
            keep["dataset"].pop("trees", None)
        keep["space_text"] = self.space_path.read_text() if self.space_path.is_file() else ""
        canon = json.dumps(keep, sort_keys=True, default=str)
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def with_overrides(self, **fields: Any) -> LoadedExperiment:
        """The same experiment with top-level fields replaced (command-line overrides), re-validated."""
        raw = dict(self.raw)
        for key, value in fields.items():
            if value is None:
                continue
            if key == "executor":
                raw["executor"] = {**raw.get("executor", {}), **value}
            else:
                raw[key] = value
        return LoadedExperiment(validate_model(Experiment, raw, self.file), self.file, raw)


def load_experiment(ref: str | Path) -> LoadedExperiment:
    path = resolve_experiment_path(ref)
    raw = yamlio.load_mapping(path)
    return experiment_from_dict(raw, str(path))


def experiment_from_dict(raw: dict[str, Any], file: str = "<memory>") -> LoadedExperiment:
    spec = validate_model(Experiment, raw, file)
    loaded = LoadedExperiment(spec, file, raw)
    check_references(loaded)
    return loaded


def check_references(exp: LoadedExperiment) -> None:
    """Files the experiment names must exist; names it uses must be known (before any trial runs)."""
    from nasearch.search.objectives import check_proxy_spec

    spec = exp.spec
    if not exp.space_path.is_file():
        raise InputError(exp.file, "space", "an existing search-space file", f"{spec.space!r} (no such file)")
    if exp.dataset_path is not None and not exp.dataset_path.exists():
        raise InputError(
            exp.file,
            "dataset.path",
            "an existing dataset (directory, data.yaml or COCO json)",
            f"{spec.dataset.path!r} (no such path)",
        )
    db = exp.latency_db
    if db is not None and spec.objectives.latency.source == "database" and not db.exists():
        raise InputError(
            exp.file,
            "objectives.latency.db",
            "an existing latency database (run `nasearch latency profile` first)",
            f"{spec.objectives.latency.db!r} (no such file)",
        )
    acc = spec.objectives.accuracy
    check_proxy_spec(acc.screen, exp.file, "objectives.accuracy.screen")
    for i, rung in enumerate(acc.rungs):
        check_proxy_spec(rung, exp.file, f"objectives.accuracy.rungs[{i}]")
    if isinstance(spec.presets, list):
        from nasearch.space.arch import list_presets, presets_dir

        local = exp.space_path.parent / "presets"
        known = list_presets(local if local.is_dir() else presets_dir())
        for i, name in enumerate(spec.presets):
            if name not in known:
                raise InputError(exp.file, f"presets[{i}]", f"a preset name (one of {', '.join(known)})", repr(name))
