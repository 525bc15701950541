"""Short-training proxy mAP: a real (tiny) training run, deterministic for a seed, budget honoured."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import ensure_synthetic, load_split
from nasearch.errors import InputError
from nasearch.proxy.short_train import short_train_map, train_subset
from nasearch.space import Architecture, load_space
from tests.conftest import SPACES

BUDGET = {"imgsz": 64, "images": 16, "epochs": 2, "batch": 8, "val_images": 6}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic(tmp_path_factory.mktemp("proxy") / "synth", images=40, imgsz=64, seed=0)


@pytest.fixture(scope="module")
def tiny() -> Architecture:
    return load_space(SPACES / "tiny_space.yaml").sample(0)


def test_short_training_is_deterministic_and_honours_the_budget(tiny: Architecture, data: Path) -> None:
    first = short_train_map(tiny, data=data, seed=0, **BUDGET)
    again = short_train_map(tiny, data=data, seed=0, **BUDGET)
    timing = ("train_seconds", "eval_seconds")
    assert first.value == again.value
    assert {k: v for k, v in first.details.items() if k not in timing} == {
        k: v for k, v in again.details.items() if k not in timing
    }
    d = first.details
    assert (d["train_images"], d["epochs"], d["images_seen"], d["steps"]) == (16, 2, 32, 4)
    assert d["val_images"] == 6 and d["imgsz"] == 64
    assert first.kind == "map50_95" and 0.0 <= first.value <= 100.0 and 0.0 <= d["map50"] <= 100.0
    assert d["nc"] == 10 and "nc_requested" not in d  # the dataset's classes, not the architecture's 4
    other = short_train_map(tiny, data=data, seed=1, nc=80, **BUDGET)
    assert other.details["nc_requested"] == 80 and other.details["nc"] == 10
    assert other.details["final_loss"] != d["final_loss"]  # the seed drives init, subset and augmentation


def test_train_subset_is_seeded(data: Path) -> None:
    split = load_split(data, "train")
    a, b, c = (train_subset(split, 10, s) for s in (0, 0, 1))
    ids = [[r.image_id for r in x.records] for x in (a, b, c)]
    assert len(ids[0]) == 10 and ids[0] == ids[1] and ids[0] != ids[2]
    assert train_subset(split, 10_000, 0) is split


def test_bad_budgets_are_input_errors(tiny: Architecture, data: Path) -> None:
    with pytest.raises(InputError, match="epochs"):
        short_train_map(tiny, data=data, **{**BUDGET, "epochs": 0})
    with pytest.raises(InputError, match="lr"):
        short_train_map(tiny, data=data, **{**BUDGET, "lr": -1.0})
    with pytest.raises(InputError, match="no such path"):
        short_train_map(tiny, data=data / "missing", **BUDGET)


def test_cli_scores_with_short_training(tiny: Architecture, data: Path, tmp_path: Path) -> None:
    import json

    path = tiny.save(tmp_path / "tiny.yaml")
    budget = [arg for kv in ("images=16", "epochs=2", "batch=8", "val_images=6") for arg in ("--budget", kv)]
    args = [
        "proxy",
        "score",
        str(path),
        "--proxy",
        "short_train",
        "--data",
        str(data),
        "--imgsz",
        "64",
        *budget,
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["proxy"] == "short_train" and doc["value"] == short_train_map(tiny, data=data, **BUDGET).value
    assert doc["details"]["images_seen"] == 32
