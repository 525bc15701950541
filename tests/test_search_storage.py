"""Several processes popping enqueued trials from one study each get a different trial, on a SQLite file
and on a PostgreSQL server; a bad storage URL is one clear line that never shows the password."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from nasearch.errors import InputError, masked
from nasearch.search.compat import storage_of, trial_id
from nasearch.search.storage import ClaimingRDBStorage, engine_url, open_storage

STORAGES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.cluster)]


@pytest.fixture(params=STORAGES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("postgres").url()


def _ask_many(url: str, n: int, out: mp.Queue) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    out.put([study.ask().number for _ in range(n)])


def _queued_study(url: str, waiting: int) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    for k in range(waiting):
        study.enqueue_trial({"x": float(k)})
    return study


def test_processes_never_claim_the_same_waiting_trial(url: str) -> None:
    study = _queued_study(url, waiting=80)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_ask_many, args=(url, 30, out)) for _ in range(4)]
    for p in procs:
        p.start()
    claims = [n for _ in procs for n in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert len(claims) == 120 and len(set(claims)) == 120
    assert set(range(80)) <= set(claims)  # the queue was served first, then new trials
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.RUNNING) == 120 and TrialState.WAITING not in states


def test_claiming_a_taken_or_finished_trial(url: str) -> None:
    study = _queued_study(url, waiting=2)
    storage = storage_of(study)
    assert isinstance(open_storage(url), ClaimingRDBStorage)
    first, second = (trial_id(t) for t in study.get_trials(deepcopy=False))
    assert storage.set_trial_state_values(first, TrialState.RUNNING) is True
    assert storage.set_trial_state_values(first, TrialState.RUNNING) is False
    storage.set_trial_state_values(first, TrialState.COMPLETE, values=[1.0])
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(first, TrialState.RUNNING)
    assert study.ask().number == 1 and storage.get_trial(second).state == TrialState.RUNNING


def test_server_urls_use_psycopg_3_and_messages_hide_the_password() -> None:
    assert engine_url("postgresql://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    assert engine_url("postgres://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    assert engine_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert (
        masked("at postgresql+psycopg://ann:p%40ss:w@db.lan:5432/s, then")
        == "at postgresql+psycopg://ann:***@db.lan:5432/s, then"
    )
    assert masked("postgresql://ann@db.lan/s sqlite:////a/b.db") == "postgresql://ann@db.lan/s sqlite:////a/b.db"


@pytest.mark.parametrize(
    "bad",
    [
        "postgresql://ann:hunter2-secret@127.0.0.1:1/study",
        "postgresql://ann:hunter2-secret@",
        "not a url",
        "mysql://ann:hunter2-secret@127.0.0.1/study",
    ],
)
def test_unreachable_or_malformed_url_is_an_input_error_without_the_password(bad: str) -> None:
    with pytest.raises(InputError) as err:
        open_storage(bad)
    line = err.value.line()
    assert line.startswith("error: storage: storage: expected a reachable Optuna storage URL")
    if "://" in bad:
        assert "hunter2-secret" not in line and ":***@" in line


def test_search_with_an_unreachable_server_exits_2_without_the_password(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nasearch.cli.main import app
    from tests.conftest import SPACES

    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: pg\nspace: {SPACES / 'tiny_space.yaml'}\nimgsz: 64\npresets: false\ntrials: 1\n"
        "objectives: {latency: {source: measure, backend: onnxruntime, threads: 1}}\n"
    )
    result = CliRunner().invoke(
        app,
        [
            "search",
            str(exp),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
            "--storage",
            "postgresql://ann:hunter2-secret@127.0.0.1:1/study",
        ],
    )
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: storage: storage: expected a reachable Optuna storage URL")
    assert "postgresql://ann:***@127.0.0.1:1/study" in lines[0] and "hunter2" not in result.output
