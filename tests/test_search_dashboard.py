"""Watching a PostgreSQL study with optuna-dashboard (the `cluster` extra installs it): the README's
`optuna-dashboard postgresql://…`, given the same URL as the search's storage, opens the study the search
wrote, and the dashboard's JSON API shows its name, its completed trials and the same objective values as
nasearch's `trials.csv`. The plain `postgresql://` scheme reaches PostgreSQL through psycopg 3 (SQLAlchemy
2.1's default driver, required by the `cluster` extra); psycopg2 is not installed.

The dashboard is its WSGI app, built from the URL string exactly as its command line builds it, and called
in this process: no server, no port."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna_dashboard
import pytest

from nasearch.app.search import run_search
from tests.cluster import PG_PASSWORD, PostgresServer
from tests.fixtures import tiny_experiment

pytestmark = pytest.mark.cluster

TRIALS = 3


def _get(app: Any, path: str) -> Any:
    """GET `path` from a WSGI app; the decoded JSON body (a 200 is asserted, the password never appears)."""
    environ: dict[str, Any] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    status: list[str] = []

    def start_response(code: str, headers: list[tuple[str, str]], exc_info: object = None) -> Any:
        status.append(code)
        return lambda data: None

    body = b"".join(app(environ, start_response)).decode()
    assert status and status[0].startswith("200"), (path, status)
    assert PG_PASSWORD not in body, f"{path} shows the database password"
    return json.loads(body)


def test_optuna_dashboard_reads_the_postgresql_study(
    tmp_path: Path, postgres: PostgresServer, predicted_latency: None
) -> None:
    url = postgres.url()
    exp = tmp_path / "exp.yaml"
    exp.write_text(tiny_experiment("dashboard-test", TRIALS, seed=3, extra=f"storage: {url}\n"))
    run_dir = tmp_path / "run"
    doc = run_search(exp, run_dir, show_progress=False)
    with open(run_dir / "trials.csv", newline="") as f:
        ours = {
            int(r["trial"]): [float(r["screen_latency_ms"]), float(r["screen_accuracy"])]
            for r in csv.DictReader(f)
            if r["state"] == "complete"
        }
    assert len(ours) == doc["trials"]["complete"] == TRIALS

    app = optuna_dashboard.wsgi(url)  # what `optuna-dashboard postgresql://USER:PASSWORD@HOST:PORT/DB` serves
    studies = _get(app, "/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["dashboard-test"]
    assert studies[0]["directions"] == ["minimize", "maximize"]  # latency down, accuracy up
    detail = _get(app, f"/api/studies/{studies[0]['study_id']}")
    assert detail["name"] == "dashboard-test"
    seen = {t["number"]: t["values"] for t in detail["trials"] if t["state"] == "Complete"}
    assert seen == ours
