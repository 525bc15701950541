"""`nasearch proxy list | score`: JSON documents, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from tests.conftest import SPACES

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    from nasearch.space import load_space

    return str(load_space(SPACES / "tiny_space.yaml").sample(0).save(tmp_path_factory.mktemp("a") / "t.yaml"))


def test_list_json() -> None:
    result = runner.invoke(app, ["proxy", "list", "--json"])
    assert result.exit_code == 0
    docs = {d["name"]: d for d in json.loads(result.stdout)}
    assert docs["zen"]["budget"] == {"batch": 4, "repeats": 2} and docs["short_train"]["needs_data"]


def test_score_json(arch_file: str) -> None:
    result = runner.invoke(
        app,
        [
            "proxy",
            "score",
            arch_file,
            "--proxy",
            "naswot",
            "--imgsz",
            "64",
            "--budget",
            "batch=4",
            "--seed",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"name", "hash", "proxy", "value", "kind", "higher_is_better", "seconds", "details"}
    assert doc["proxy"] == "naswot" and doc["kind"] == "naswot_logdet" and doc["details"]["batch"] == 4


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--proxy", "jacob_cov"], "--proxy: proxy: expected one of"),
        (["--proxy", "zen", "--budget", "batch"], "--budget: budget: expected KEY=VALUE"),
        (["--proxy", "zen", "--budget", "batch=two"], "--budget: batch: expected a number"),
        (["--proxy", "zen", "--budget", "epochs=2"], "--budget: epochs: expected a budget key of zen"),
        (["--proxy", "synflow", "--imgsz", "100"], "--imgsz: imgsz: expected a multiple of 32"),
    ],
)
def test_bad_input_exits_2_with_one_line(arch_file: str, args: list[str], where: str) -> None:
    result = runner.invoke(app, ["proxy", "score", arch_file, *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + where)
