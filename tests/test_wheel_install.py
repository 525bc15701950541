"""The package as a user installs it: a wheel built from the repository, installed non-editable into a fresh
venv and run from a folder outside the checkout, finds its presets, spaces and T4 model (package data)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SHIPPED = (
    "nasearch/resources/search_spaces/yolo_nas_space.yaml",
    "nasearch/resources/search_spaces/tiny_space.yaml",
    "nasearch/resources/search_spaces/nano_union_space.yaml",  # the quickstart's space
    "nasearch/resources/search_spaces/presets/yolov8n.yaml",
    "nasearch/resources/experiments/quickstart.yaml",
    "nasearch/resources/latency_db/t4_model.json",
)

# The cheapest search there is: predicted T4 latency (the shipped model), parameter count as the accuracy
# stand-in, a shipped space named by its bare name, two trials.
TINY_EXPERIMENT = """\
name: wheel_check
space: tiny_space
imgsz: 64
objectives:
  latency: {source: target, target: t4-tensorrt, precision: fp16}
  accuracy:
    screen: {proxy: params}
presets: false
trials: 2
"""


def _build_wheel(tmp: Path) -> Path:
    """Build from a copy of the sources, so the checkout gets no build/ or egg-info of this test."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "nasearch", src / "nasearch", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("nasearch-*.whl")
    return wheel


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (the checkout must not be importable) and none of nasearch's data-location overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "NASEARCH_PRESETS", "NASEARCH_EXPERIMENTS")
    }
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _venv_with(wheel: Path, tmp: Path) -> Path:
    """A fresh venv with the wheel installed (not editable). The heavy dependencies (torch, ...) are then seen
    through a .pth line naming this interpreter's site-packages: a plain path, so its editable-install hook is
    not read, and written after the install, so pip does not take that nasearch for an installed one."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        check=True,
        timeout=300,
        env=_clean_env(),
    )
    (purelib,) = (venv / "lib").glob("python3*/site-packages")
    assert (purelib / "nasearch" / "resources" / "search_spaces" / "presets" / "yolov8n.yaml").is_file()
    (purelib / "shared_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv


@pytest.mark.slow
def test_wheel_installed_non_editable_runs_outside_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SHIPPED) <= names, sorted(set(SHIPPED) - names)

    venv = _venv_with(wheel, tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)

    where = run(str(venv / "bin" / "python"), "-c", "import nasearch; print(nasearch.__file__)")
    assert where.returncode == 0, where.stderr
    installed = Path(where.stdout.strip()).resolve()
    assert installed.is_relative_to(venv.resolve()), installed
    assert not installed.is_relative_to(ROOT), installed

    cli = str(venv / "bin" / "nasearch")
    info = run(cli, "model", "info", "yolov8n", "--json")
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["name"] == "yolov8n"
    assert doc["imgsz"] == 640 and doc["nc"] == 80

    (work / "tiny.yaml").write_text(TINY_EXPERIMENT)
    search = run(cli, "search", "tiny.yaml", "--out", "run")
    assert search.returncode == 0, search.stderr[-2000:]
    with (work / "run" / "trials.csv").open() as f:
        done = [row for row in csv.DictReader(f) if row["state"] == "complete"]
    assert done, (work / "run" / "trials.csv").read_text()
    for row in done:  # scored by the shipped T4 model, not measured
        assert row["latency_method"].startswith("t4-tensorrt") and row["latency_measured"] == "False", row
        assert float(row["latency_ms"]) > 0 and int(row["params"]) > 0, row
    assert json.loads((work / "run" / "summary.json").read_text())["front"]
