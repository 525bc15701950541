"""The recipe comparison pairs runs by model and seed and measures the late swing of each curve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures import benchmark_script

recipes = benchmark_script("payoff_recipes")


def _run(folder: Path, key: str, seed: int, maps: list[float]) -> None:
    path = folder / "train" / key / f"seed{seed}" / "curve.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"curve": [{"epoch": i + 1, "map": m} for i, m in enumerate(maps)]}))


def test_late_swing_averages_the_last_epoch_to_epoch_changes():
    assert recipes.late_swing([9.0, 1.0, 2.0, 4.0, 3.0], last=3) == pytest.approx((1 + 2 + 1) / 3)


def test_only_runs_finished_in_both_folders_are_paired(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for seed in (0, 1, 2):
        _run(a, "m", seed, [0, 4, 0, 4, 0, 4])  # swings 4 every epoch
        _run(b, "m", seed, [0, 1, 1.5, 1.5, 2, 2])  # swings 0.25 on average over the last 4
    _run(a, "other", 0, [0, 4, 0, 4, 0, 4])  # not in b: left out
    _run(b, "m2", 0, [0, 1])  # unfinished in b, absent in a: left out
    recipes.main([str(a), str(b), "--epochs", "6", "--last", "4"])
    out = capsys.readouterr().out
    assert "n = 3 runs" in out and "A (" in out and "mean 4.00" in out and "mean 0.25" in out
    assert "-3.75 [-3.75, -3.75]" in out and "B swings less" in out


def test_too_few_common_runs_or_a_broken_curve_exit_2_with_one_line(tmp_path, capsys):
    _run(tmp_path / "a", "m", 0, [1, 2])
    with pytest.raises(SystemExit) as exc:
        recipes.main([str(tmp_path / "a"), str(tmp_path / "b"), "--epochs", "2"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert "at least 2 runs of 2 epochs" in err and "0 finished in both (A 1, B 0)" in err
    (tmp_path / "a" / "train" / "m" / "seed0" / "curve.json").write_text('{"curve": [{"epoch": 1}]}')
    with pytest.raises(SystemExit) as exc:
        recipes.main([str(tmp_path / "a"), str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "seed0/curve.json" in err and "KeyError" in err
