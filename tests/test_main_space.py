"""The main space and every preset, through the public CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.space import list_presets, load_space
from tests.conftest import SPACES

runner = CliRunner()
MAIN = SPACES / "yolo_nas_space.yaml"


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_main_space_is_autonac_sized_and_holds_yolo_nas():
    info = _json(["space", "info", str(MAIN), "--json"])
    assert info["cardinality_log10"] >= 14
    assert info["feasible_cardinality_log10"] >= 14
    assert {"yolo_nas_s", "yolo_nas_m", "yolo_nas_l"} <= set(info["presets_inside"])
    for name in ("yolo_nas_s", "yolo_nas_m", "yolo_nas_l"):
        assert _json(["space", "contains", str(MAIN), name, "--json"]) == {"inside": True, "reason": "inside"}


def test_main_space_offers_several_block_types_per_stage():
    space = load_space(MAIN)
    stage_choices = [
        d
        for d in space.decisions()
        if d.name.startswith("backbone.stages[") and "|" not in d.name and d.name.endswith("]")
    ]
    assert len(stage_choices) == 4 and all(d.size >= 2 for d in stage_choices)


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_every_preset_fuses_exactly(name):
    doc = _json(["model", "verify", name, "--imgsz", "64", "--json"])
    assert doc["ok"] and doc["max_abs_diff"] <= 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_main_space_architectures_fuse_exactly(tmp_path, seed):
    out = tmp_path / "a.yaml"
    assert runner.invoke(app, ["space", "sample", str(MAIN), "--seed", str(seed), "--out", str(out)]).exit_code == 0
    doc = _json(["model", "verify", str(out), "--imgsz", "64", "--json"])
    assert doc["ok"], doc
