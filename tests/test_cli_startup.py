"""Start-up imports: the command line loads a heavy library only in the command that uses it (behaviour, not
timing; the timings are in benchmarks/cli_startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "optuna", "pandas", "matplotlib", "ray")

PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["nasearch", *args]
from nasearch.cli.main import main
try:
    main()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
print(json.dumps({"code": code, "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""


def imported_by(*args: str) -> tuple[int, list[str]]:
    """Run `nasearch ARGS` in a fresh interpreter; its exit code and which HEAVY modules it imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return doc["code"], doc["loaded"]


def test_help_imports_no_heavy_library() -> None:
    code, loaded = imported_by("--help")
    assert code == 0
    assert loaded == [], f"`nasearch --help` imported {loaded}"


def test_group_help_imports_no_heavy_library() -> None:
    code, loaded = imported_by("search", "--help")
    assert code == 0
    assert loaded == [], f"`nasearch search --help` imported {loaded}"


@pytest.mark.parametrize(
    "args",
    [
        ("space", "info", "search_spaces/yolo_nas_space.yaml", "--json"),
        ("space", "sample", "search_spaces/yolo_nas_space.yaml", "--seed", "3"),
        ("space", "contains", "search_spaces/yolo_nas_space.yaml", "yolo_nas_s", "--json"),
    ],
    ids=["info", "sample", "contains"],
)
def test_space_commands_import_no_heavy_library(args: tuple[str, ...]) -> None:
    """The DSL validates, samples and describes spaces from the blocks' declarations (`nasearch.nn.specs`),
    which need no torch; presets are validated the same way."""
    code, loaded = imported_by(*args)
    assert code == 0
    assert loaded == [], f"`nasearch {' '.join(args[:2])}` imported {loaded}"


@pytest.mark.slow
def test_model_info_builds_with_torch_alone() -> None:
    """Counting parameters and FLOPs builds the model, so torch loads; no other heavy library does."""
    code, loaded = imported_by("model", "info", "yolo_nas_s", "--json")
    assert code == 0
    assert loaded == ["torch"], f"`nasearch model info` imported {loaded}"
