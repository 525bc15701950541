"""`nasearch train`: exact resume, checkpoints readable with weights_only, per-epoch logs, CLI errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import ensure_synthetic
from nasearch.space import build_model, load_space
from nasearch.train.checkpoint import load_checkpoint, save_checkpoint
from nasearch.train.trainer import LAST, TrainConfig, prepare_run

EPOCHS = 2


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return ensure_synthetic(tmp_path_factory.mktemp("synth") / "d", images=20, imgsz=64, seed=1)


@pytest.fixture(scope="module")
def arch(tiny_space_path):
    return load_space(tiny_space_path).sample(0)


def _config(**kw) -> TrainConfig:
    base = dict(epochs=EPOCHS, imgsz=64, batch=8, workers=0, close_mosaic=1, min_warmup_iters=2, cache=True)
    return TrainConfig(**{**base, **kw})


class Interrupt(Exception):
    pass


def _stop_after_first_epoch(epoch: int, row: dict) -> None:
    raise Interrupt  # as a kill right after last.pt of epoch 1 was written


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data, arch) -> Path:
    """An uninterrupted two-epoch run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    torch.set_num_threads(1)
    prepare_run(arch, str(data), out, _config()).fit()
    return out


def test_resume_continues_exactly(tmp_path, data, arch, reference_run):
    out = tmp_path / "run"
    trainer = prepare_run(arch, str(data), out, _config())
    trainer.on_epoch_end = _stop_after_first_epoch
    with pytest.raises(Interrupt):
        trainer.fit()
    first = torch.load(out / LAST, weights_only=True)
    assert first["epoch"] == 0 and len(first["history"]) == 1
    result = CliRunner().invoke(app, ["train", str(out / LAST), "--resume", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["epochs"] == EPOCHS
    resumed = torch.load(out / LAST, weights_only=True)
    ref = torch.load(reference_run / LAST, weights_only=True)
    assert resumed["epoch"] == ref["epoch"] == EPOCHS - 1
    assert resumed["iteration"] == ref["iteration"]
    for key in ("model", "train_model"):
        for name, tensor in ref[key].items():
            assert torch.equal(tensor, resumed[key][name]), f"{key}.{name} differs after resume"
    assert resumed["ema_updates"] == ref["ema_updates"]
    drop_time = [{k: v for k, v in row.items() if not k.startswith("time/")} for row in ref["history"]]
    assert [{k: v for k, v in row.items() if not k.startswith("time/")} for row in resumed["history"]] == drop_time
    assert resumed["optimizer"]["state"].keys() == ref["optimizer"]["state"].keys()


def test_run_directory_contents(reference_run, arch):
    for name in ("last.pt", "best.pt", "results.csv", "results.png", "arch.yaml"):
        assert (reference_run / name).is_file(), name
    assert (reference_run / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((reference_run / "results.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    for column in (
        "train/box_loss",
        "train/cls_loss",
        "train/dfl_loss",
        "metrics/mAP50-95",
        "metrics/mAP50",
        "lr/pg0",
        "lr/pg2",
    ):
        assert all(r[column] != "" for r in rows), column
    # the learning rate follows warm-up and decay: the bias group starts high and comes down
    assert float(rows[0]["lr/pg2"]) > float(rows[-1]["lr/pg2"])
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(reference_run / name, weights_only=True)
        for key in (
            "arch",
            "model",
            "train_model",
            "optimizer",
            "epoch",
            "ema_updates",
            "best_fitness",
            "train_args",
            "history",
            "class_names",
        ):
            assert key in ckpt, (name, key)
        assert ckpt["train_args"]["epochs"] == EPOCHS and ckpt["arch"]["nc"] == 10
        assert ckpt["ema_updates"] > 0
        _, loaded_arch, _ = load_checkpoint(reference_run / name)
        assert loaded_arch.data["nc"] == 10 and loaded_arch.data["backbone"] == arch.data["backbone"]
        # `model` holds the EMA weights, not the raw training weights
        assert any(
            not torch.equal(ckpt["model"][k], ckpt["train_model"][k])
            for k in ckpt["model"]
            if ckpt["model"][k].is_floating_point()
        )
    best = torch.load(reference_run / "best.pt", weights_only=True)
    last = torch.load(reference_run / "last.pt", weights_only=True)
    assert best["best_fitness"] == last["best_fitness"] == max(r["metrics/mAP50-95"] for r in last["history"])


def test_mosaic_is_closed_for_the_last_epochs(arch):
    trainer = prepare_run(arch, "unused", Path("unused"), _config(epochs=10, close_mosaic=3))
    assert [trainer._mosaic_on(e) for e in range(10)] == [True] * 7 + [False] * 3
    assert not prepare_run(arch, "unused", Path("unused"), _config(mosaic=False))._mosaic_on(0)


def test_cli_refuses_to_overwrite_a_run_and_checks_resume_flags(reference_run, data):
    runner = CliRunner()
    again = runner.invoke(
        app, ["train", str(reference_run / "arch.yaml"), "--data", str(data), "--out", str(reference_run)]
    )
    assert again.exit_code == 2 and "previous run" in again.stderr and "Traceback" not in again.output
    other = runner.invoke(app, ["train", str(reference_run / LAST), "--resume", "--epochs", "7"])
    assert other.exit_code == 2 and "--epochs" in other.stderr
    finished = runner.invoke(app, ["train", str(reference_run / LAST), "--resume"])
    assert finished.exit_code == 2 and "epochs done" in finished.stderr


def test_cli_bad_inputs_exit_2(tmp_path, data):
    runner = CliRunner()
    corrupt = tmp_path / "last.pt"
    corrupt.write_bytes(b"\x00" * 64)
    cases = [
        (["train", str(corrupt), "--resume"], "last.pt"),
        (["train", "yolov8n"], "--data"),
        (["train", "yolov8n", "--data", str(data), "--batch", "0", "--out", str(tmp_path / "o")], "batch"),
        (["train", "yolov8n", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], "nope"),
        (["train", "yolov8n", "--data", str(data), "--optimizer", "adam", "--out", str(tmp_path / "o")], "optimizer"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output


def test_distillation_from_a_teacher_checkpoint(tmp_path, data, arch, reference_run):
    out = tmp_path / "student"
    result = prepare_run(
        arch, str(data), out, _config(epochs=1, teacher=str(reference_run / "best.pt"), distill_weight=2.0)
    ).fit()
    assert result.epochs == 1
    saved = torch.load(out / LAST, weights_only=True)
    assert saved["train_args"]["teacher"] == str(reference_run / "best.pt")
    # a teacher trained on other classes is refused
    three = arch.with_overrides(nc=3)
    other = save_checkpoint({"arch": three.data, "model": build_model(three).state_dict()}, tmp_path / "other.pt")
    runner = CliRunner().invoke(
        app,
        [
            "train",
            str(reference_run / "arch.yaml"),
            "--data",
            str(data),
            "--teacher",
            str(other),
            "--epochs",
            "1",
            "--imgsz",
            "64",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert runner.exit_code == 2 and "other.pt: arch.nc" in runner.stderr and "classes" in runner.stderr


def test_curve_plateau_test_on_known_numbers():
    from nasearch.train.curve import curve_report, plateau, plateau_window

    assert plateau_window(10) == 3 and plateau_window(40) == 8
    rising = plateau([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], window=3)
    assert rising["gain"] == pytest.approx(3.0) and rising["reached"] is False and "still rising" in rising["text"]
    flat = plateau([1.0, 5.0, 8.0, 8.2, 7.9, 8.3], window=3)
    assert flat["gain"] == pytest.approx(0.3) and flat["reached"] is True and "stopped rising" in flat["text"]
    assert plateau([1.0, 2.0], window=3)["reached"] is None  # too short to judge
    maps = [1.0, 3.0, 3.0, 2.0]
    history = [{"epoch": i + 1, "metrics/mAP50-95": m, "metrics/mAP50": 2 * m} for i, m in enumerate(maps)]
    report = curve_report(history, epochs=4)
    assert report["best_map"] == 3.0 and report["best_epoch"] == 2  # the first epoch reaching the best
    assert report["final_map"] == 2.0 and report["final_map50"] == 4.0
    assert [p["epoch"] for p in report["curve"]] == [1, 2, 3, 4]


def test_cli_json_and_run_folder_report_the_curve(tmp_path, data, reference_run):
    out = tmp_path / "run"
    args = ["train", str(reference_run / "arch.yaml"), "--data", str(data), "--epochs", str(EPOCHS)]
    args += ["--imgsz", "64", "--batch", "8", "--workers", "0", "--close-mosaic", "1", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for key in ("out", "epochs", "best_epoch", "best_map", "last", "best", "csv", "plot", "stopped_early", "map"):
        assert key in doc, key  # the fields that were there before stay
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [p["epoch"] for p in doc["curve"]] == [int(r["epoch"]) for r in rows] == [1, 2]
    assert [p["map"] for p in doc["curve"]] == pytest.approx([float(r["metrics/mAP50-95"]) for r in rows], abs=1e-4)
    assert doc["final_map"] == doc["curve"][-1]["map"] == pytest.approx(doc["map"])
    assert doc["best_map"] == max(p["map"] for p in doc["curve"])
    assert doc["plateau"]["window"] == 3 and doc["plateau"]["reached"] is None  # 2 epochs: too short to judge
    saved = json.loads(Path(doc["curve_file"]).read_text())
    assert Path(doc["curve_file"]) == out / "curve.json" and saved["curve"] == doc["curve"]
    assert "plateau: not judged" in result.stderr and f"final {doc['final_map']:.2f}" in result.stderr
