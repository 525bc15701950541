"""The one reader and writer of what nasearch stores on Optuna trials and studies (user attributes).

A trial's attributes are a flat JSON mapping in the storage (`rungs`, `duplicate_of`, `preset`, `failure`, …);
`TrialRecord` is its typed form, `TrialRecord.from_trial` the only parser and `TrialRecorder` / `enqueue` /
`fail_elsewhere` the only writers, so a key is spelled, typed and versioned in one place. The layout is
versioned by the `attr_version` attribute: trials written before it existed read as version 1 (the layout
has not changed since), a newer version than this code knows is refused. A value of the wrong type in a
user's study is an `InputError` naming the study, the trial and the field (exit 2), never a traceback.
The study's own description (`nasearch` study attribute) is read and written here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Annotated, Any

import optuna
from optuna.trial import TrialState
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, ValidationError

from nasearch.errors import InputError, describe
from nasearch.search.compat import mark_failed
from nasearch.validation import input_error

RECORD_VERSION = 1
VERSION_KEY = "attr_version"
META_KEY = "nasearch"
INTERRUPTED_PREFIX = "interrupted"


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a number")
    return value


Number = Annotated[int | float, PlainValidator(_number)]  # kept as stored: an int stays an int (trials.csv)


class _Open(BaseModel):
    """A stored document: typed fields, unknown keys kept as they are (written by another release)."""

    model_config = ConfigDict(extra="allow")


def study_source(name: str) -> str:
    """How errors name a study (it has no file)."""
    return f"study {name!r}"


class RungDoc(_Open):
    """One rung's result on a trial (`rungs[i]`)."""

    rung: int
    proxy: str | None = None
    budget: dict[str, Any] | None = None
    accuracy: Number
    kind: str | None = None
    seconds: Number | None = None
    latency_ms: Number
    latency_measured: bool | None = None
    feasible: bool | None = None
    details: dict[str, Any] | None = None
    promoted: bool | None = None


class ScreenDoc(_Open):
    """What the latency screen decided (`latency_screen`)."""

    predicted_ms: Number | None = None
    method: str | None = None
    n: int | None = None
    margin: Number | None = None
    limit_ms: Number | None = None
    skip: bool | None = None


class TrialRecord(_Open):
    """Every attribute nasearch stores on a trial, typed, plus what Optuna itself keeps of the trial.

    Attribute fields are named as stored; a field is `None` when the trial does not carry it (`has` tells
    apart a stored null). `number`, `state`, `values`, `constraints` and `decisions` come from the trial,
    never from its attributes, and are not written back."""

    number: int = Field(-1, exclude=True)
    state: TrialState = Field(TrialState.RUNNING, exclude=True)
    values: tuple[float, ...] | None = Field(None, exclude=True)
    constraints: dict[str, float] = Field(default_factory=dict, exclude=True)
    decisions: dict[str, Any] = Field(default_factory=dict, exclude=True)

    attr_version: int | None = None
    preset: str | None = None
    retry_of: int | None = None
    repair_of: int | None = None
    worker: str | None = None
    worker_started: Number | None = None
    worker_finished: Number | None = None
    arch_name: str | None = None
    arch_hash: str | None = None
    arch_yaml: str | None = None
    params: int | None = None
    gflops: Number | None = None
    convs: int | None = None
    latency_screen: ScreenDoc | None = None
    screened: str | None = None
    screen_latency_ms: Number | None = None
    screen_latency_measured: bool | None = None
    latency_ms: Number | None = None
    latency_measured: bool | None = None
    latency_method: str | None = None
    latency_details: dict[str, Any] | None = None
    rungs: list[RungDoc] | None = None
    accuracy: Number | None = None
    accuracy_kind: str | None = None
    fidelity: int | None = None
    feasible: bool | None = None
    violations: list[str] | None = None
    rejected: str | None = None
    failure: str | None = None
    failure_trace: str | None = None
    seconds: Number | None = None
    duplicate_of: int | None = None

    @classmethod
    def from_trial(cls, trial: optuna.trial.FrozenTrial | optuna.Trial, study: str) -> TrialRecord:
        """The typed record of a trial (frozen, or live in this process) of the study named `study`."""
        source = study_source(study)
        attrs = dict(trial.user_attrs)
        where = f"trials[{trial.number}]"
        version = attrs.get(VERSION_KEY, 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InputError(
                source, f"{where}.{VERSION_KEY}", "a record version (a positive integer)", describe(version)
            )
        if version > RECORD_VERSION:
            raise InputError(
                source,
                f"{where}.{VERSION_KEY}",
                f"a trial record of version {RECORD_VERSION} or older (written by a newer nasearch: upgrade)",
                str(version),
            )
        own: dict[str, Any] = {"number": trial.number, "decisions": dict(trial.params)}
        if isinstance(trial, optuna.trial.FrozenTrial):
            own.update(state=trial.state, values=trial.values, constraints=dict(trial.constraints))
        try:
            return cls.model_validate({**{k: v for k, v in attrs.items() if k not in own}, **own})
        except ValidationError as exc:
            raise input_error(exc, cls, source, prefix=where) from None

    def has(self, name: str) -> bool:
        """Whether the trial stores attribute `name` (a stored null counts)."""
        return name in self.model_fields_set or name in (self.model_extra or {})

    def attrs(self) -> dict[str, Any]:
        """The attributes as stored (unknown keys included): what `write` would store for this record."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def version(self) -> int:
        return self.attr_version or 1

    @property
    def interrupted(self) -> bool:
        """Failed because the search stopped while it ran (retried on --resume; not the candidate's fault)."""
        return (self.failure or "").startswith(INTERRUPTED_PREFIX)

    @property
    def original(self) -> int:
        """The trial that first scored this architecture (itself unless a duplicate)."""
        return self.number if self.duplicate_of is None else self.duplicate_of

    def rung(self, index: int) -> RungDoc | None:
        """The rung `index` result, when the trial reached it feasibly."""
        return next((d for d in self.rungs or () if d.rung == index and d.feasible), None)


def records(
    study: optuna.Study, states: Iterable[TrialState] | None = None, ordered: bool = False
) -> list[TrialRecord]:
    """The study's trials as records (in `states`; in trial-number order with `ordered`)."""
    trials = study.get_trials(deepcopy=False, states=tuple(states) if states is not None else None)
    if ordered:
        trials = sorted(trials, key=lambda t: t.number)
    return [TrialRecord.from_trial(t, study.study_name) for t in trials]


@cache
def _adapter(name: str) -> TypeAdapter:
    field = TrialRecord.model_fields.get(name)
    if field is None or field.exclude:
        raise KeyError(f"{name!r} is no trial attribute (see nasearch.search.record.TrialRecord)")
    return TypeAdapter(field.annotation)


def checked(key: str, value: Any) -> Any:
    """`value` for attribute `key`, unchanged, once it is known to be of the field's type (a programming
    error otherwise: nasearch wrote it)."""
    _adapter(key).validate_python(value)
    return value


class TrialRecorder:
    """Writes a live trial's attributes as the candidate is evaluated (the record's version first)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self._versioned = False

    def set(self, key: str, value: Any) -> None:
        if not self._versioned:
            self._versioned = True
            if key != VERSION_KEY:
                self.trial.set_user_attr(VERSION_KEY, RECORD_VERSION)
        self.trial.set_user_attr(key, checked(key, value))


def write(trial: optuna.Trial, **attrs: Any) -> None:
    """Store `attrs` on a live trial (e.g. `failure=…`)."""
    rec = TrialRecorder(trial)
    for key, value in attrs.items():
        rec.set(key, value)


def fail_elsewhere(study: optuna.Study, trial: optuna.trial.FrozenTrial, failure: str) -> None:
    """Fail a trial this process does not hold, saying why (the private storage call is in `compat`)."""
    mark_failed(study, trial, {VERSION_KEY: RECORD_VERSION, "failure": checked("failure", failure)})


def enqueue(
    study: optuna.Study,
    decisions: dict[str, Any],
    preset: str | None = None,
    retry_of: int | None = None,
    repair_of: int | None = None,
) -> None:
    """Queue a trial with fixed decisions, and the attributes that say why (a preset, a retry, a repair)."""
    given = {"preset": preset, "retry_of": retry_of, "repair_of": repair_of}
    attrs = {k: checked(k, v) for k, v in given.items() if v is not None}
    study.enqueue_trial(decisions, user_attrs={VERSION_KEY: RECORD_VERSION, **attrs})


class StudyMeta(_Open):
    """The study's description (`nasearch` study attribute), as far as the results read it."""

    constraints: dict[str, float] = Field(default_factory=dict)
    experiment: dict[str, Any] = Field(default_factory=dict)


def write_meta(study: optuna.Study, meta: dict[str, Any]) -> None:
    study.set_user_attr(META_KEY, meta)


def read_meta(study: optuna.Study) -> dict[str, Any]:
    """The study's description as stored (`{}` for a study nasearch did not create)."""
    raw = study.user_attrs.get(META_KEY, {})
    source = study_source(study.study_name)
    if not isinstance(raw, dict):
        raise InputError(source, META_KEY, "a mapping (the search's description)", describe(raw))
    try:
        StudyMeta.model_validate(raw)
    except ValidationError as exc:
        raise input_error(exc, StudyMeta, source, prefix=META_KEY) from None
    return raw
