"""Every notebook runs top to bottom against a small finished search run and draws at least one figure."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from nasearch.app.search import run_search
from nasearch.data.synth import ensure_synthetic
from tests.conftest import ROOT
from tests.fixtures import tiny_experiment

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

EXPERIMENT = tiny_experiment("notebook-test", 8, seed=1, sampler=None, eta=2, extra="suite: {models: 2}\n")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("nbrun")
    exp = root / "exp.yaml"
    exp.write_text(EXPERIMENT)
    run_dir = root / "run"
    run_search(exp, out=run_dir)
    data = ensure_synthetic(root / "data", images=48, imgsz=64, seed=0)
    return run_dir, data


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(
            not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"
        ), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_draws(path: Path, finished_run, monkeypatch):
    run_dir, data = finished_run
    monkeypatch.setenv("NASEARCH_RUN", str(run_dir))
    monkeypatch.setenv("NASEARCH_DATA", str(data))
    monkeypatch.setenv("NASEARCH_DEPLOY_EPOCHS", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    images = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    figures = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "Figure" in str(o.get("data", {}).get("text/plain", ""))
    ]
    assert images or figures, f"{path.name} drew no figure"
    assert os.environ["NASEARCH_RUN"] == str(run_dir)
