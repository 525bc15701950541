"""The private Optuna calls of `nasearch.search.compat` still do what the project relies on, and the
installed Optuna and Ray are releases the dependency bounds admit (a newer one must be tested first)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from packaging.requirements import Requirement

from nasearch.search import compat
from nasearch.search.storage import open_storage
from tests.conftest import ROOT


def _requirements() -> dict[str, Requirement]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = [
        *doc["project"]["dependencies"],
        *(r for extra in doc["project"]["optional-dependencies"].values() for r in extra),
    ]
    return {Requirement(r).name: Requirement(r) for r in reqs}


@pytest.mark.parametrize("package", ["optuna", "ray", "psycopg"])
def test_installed_release_is_inside_the_tested_bounds(package: str) -> None:
    req = _requirements()[package]
    assert any(s.operator == "<" for s in req.specifier), f"{package} needs an upper bound in pyproject.toml"
    if package == "ray":
        pytest.importorskip("ray")
    installed = version(package)
    assert req.specifier.contains(installed, prereleases=True), (
        f"{package} {installed} is outside {req.specifier}: test nasearch.search.compat against it first"
    )


def test_private_optuna_calls_work(tmp_path: Path) -> None:
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"), study_name="s")
    asked = study.ask()
    tid = compat.trial_id(asked)
    assert isinstance(tid, int) and compat.trial_id(study.trials[0]) == tid
    assert compat.storage_of(study).get_trial(tid).number == asked.number
    table = compat.trial_table()
    assert {"trial_id", "state", "datetime_start"} <= set(table.c.keys())
    other = optuna.load_study(study_name="s", storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    compat.reopen_trial(other, tid).set_user_attr("written", "elsewhere")  # another process's handle
    assert study.trials[0].user_attrs["written"] == "elsewhere"
    compat.mark_failed(other, study.trials[0], {"failure": "lost"})
    frozen = study.trials[0]
    assert frozen.state == TrialState.FAIL and frozen.user_attrs["failure"] == "lost"
