"""Searches on the tiny space, in process: failures, determinism, constraints, promotion, results."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from nasearch.app.search import run_search
from nasearch.cli.main import app
from nasearch.nn.inspect import count_params
from nasearch.proxy import registry
from nasearch.proxy.result import ProxyResult
from nasearch.search.study import RunInfo, load_study
from nasearch.space import Architecture, build_model, load_arch, load_space
from tests.conftest import SPACES

runner = CliRunner()


def experiment(
    tmp_path: Path,
    extra: str = "",
    trials: int = 8,
    screen: str = "flops",
    space: Path = SPACES / "tiny_space.yaml",
    seed: int = 3,
) -> Path:
    text = f"""name: tiny-test
space: {space}
imgsz: 64
objectives:
  latency: {{source: measure}}
  accuracy:
    screen: {{proxy: {screen}}}
    rungs: [{{proxy: params}}]
    eta: 2
presets: false
sampler_options: {{n_startup_trials: 3}}
trials: {trials}
seed: {seed}
{extra}"""
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


@pytest.fixture()
def flaky_proxy() -> Iterator[None]:
    """A proxy that fails the way real ones do, on about a quarter of the space: an exception, or NaN."""

    def flaky(arch: Architecture, imgsz: int | None = None, seed: int = 0, nc: int | None = None) -> ProxyResult:
        stem, stage1 = arch.data["backbone"]["stem"]["out"], arch.data["backbone"]["stages"][1]
        if stem == 16 and stage1["blocks"] == 2:
            raise RuntimeError("simulated export failure")
        if stem == 8 and stage1["blocks"] == 2 and stage1["out"] == 16:
            return ProxyResult(float("nan"), "flaky")
        return ProxyResult(float(count_params(build_model(arch, nc=nc))), "flaky")

    registry.register(registry.Proxy("flaky", "flaky", flaky, True))
    yield
    registry.unregister("flaky")


def _study(run_dir: Path) -> optuna.Study:
    info = RunInfo.load(run_dir)
    return load_study(info.storage, info.study_name)


def test_failed_candidates_do_not_stop_the_search(tmp_path: Path, predicted_latency: None, flaky_proxy: None) -> None:
    run_dir = tmp_path / "run"
    path = experiment(tmp_path, screen="flaky", trials=6, extra="max_failures: 30\nsampler: random\n")
    doc = run_search(path, run_dir, show_progress=False)
    trials = pd.read_csv(run_dir / "trials.csv")
    failed = trials[trials.state == "failed"]
    assert (trials.state == "complete").sum() == 6 == doc["trials"]["complete"]
    assert len(failed) >= 1
    reasons = " | ".join(failed.failure)
    assert "accuracy rung 0 (flaky)" in reasons
    assert "simulated export failure" in reasons or "returned nan" in reasons


def test_same_seed_same_sequence_other_seed_other_sequence(tmp_path: Path, predicted_latency: None) -> None:
    def sequence(name: str, seed: int) -> list[tuple]:
        (tmp_path / name).mkdir()
        path = experiment(tmp_path / name, seed=seed, trials=7)
        run_search(path, tmp_path / name / "run", show_progress=False)
        return [(t.params, t.values, t.state) for t in _study(tmp_path / name / "run").trials]

    first, again, other = sequence("a", 3), sequence("b", 3), sequence("c", 4)
    assert first == again
    assert [p for p, _, _ in first] != [p for p, _, _ in other]
    assert sum(s == optuna.trial.TrialState.COMPLETE for _, _, s in first) == 7


def test_constraints_hold_on_the_front_and_block_promotion(tmp_path: Path, predicted_latency: None) -> None:
    # a limit inside the range of the space (about 0.2 to 0.3 M parameters), so both sides occur
    run_dir = tmp_path / "run"
    run_search(
        experiment(tmp_path, extra="constraints: {params_m: 0.25}\nsampler: random\n", trials=12),
        run_dir,
        show_progress=False,
    )
    trials = pd.read_csv(run_dir / "trials.csv")
    done = trials[trials.state == "complete"]
    assert (done.feasible == False).any() and (done.feasible == True).any()  # noqa: E712
    infeasible = done[done.feasible == False]  # noqa: E712
    assert infeasible.rung1_accuracy.isna().all(), "an infeasible candidate was promoted"
    assert (infeasible.params > 250_000).all()
    front = pd.read_csv(run_dir / "pareto.csv")
    assert len(front) >= 1 and (front.params <= 250_000).all()


def test_promotion_records_every_rung_and_front_is_at_the_top_rung(tmp_path: Path, predicted_latency: None) -> None:
    run_dir = tmp_path / "run"
    run_search(experiment(tmp_path, trials=10, extra="sampler: random\n"), run_dir, show_progress=False)
    study = _study(run_dir)
    done = [
        t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
    ]
    promoted = [t for t in done if len(t.user_attrs["rungs"]) == 2]
    assert 0 < len(promoted) < len(done)
    for t in done:
        rung0 = t.user_attrs["rungs"][0]
        assert rung0["kind"] == "gflops" and rung0["accuracy"] == pytest.approx(t.values[1])
        assert t.user_attrs["latency_measured"] is False and t.user_attrs["arch_yaml"].startswith("name:")
        assert rung0["promoted"] == (len(t.user_attrs["rungs"]) == 2)
    front = json.loads((run_dir / "summary.json").read_text())["front"]
    assert front and all(e["accuracy_kind"] == "params_m" and e["fidelity"] == 1 for e in front)
    assert {e["trial"] for e in front} <= {t.number for t in promoted}


def test_presets_inside_the_space_run_first_and_are_always_promoted(tmp_path: Path, predicted_latency: None) -> None:
    space_dir = tmp_path / "space"
    (space_dir / "presets").mkdir(parents=True)
    shutil.copy(SPACES / "tiny_space.yaml", space_dir / "tiny_space.yaml")
    preset = load_space(SPACES / "tiny_space.yaml").sample(5)
    Architecture({**preset.data, "name": "tiny_ref"}).save(space_dir / "presets" / "tiny_ref.yaml")
    (space_dir / "presets" / "outsider.yaml").write_text(
        (Path(__file__).parents[1] / "search_spaces" / "presets" / "yolov8n.yaml").read_text()
    )
    exp = experiment(tmp_path, space=space_dir / "tiny_space.yaml", trials=5).read_text()
    exp = exp.replace("presets: false", "presets: true")
    path = tmp_path / "with_presets.yaml"
    path.write_text(exp)
    run_dir = tmp_path / "run"
    run_search(path, run_dir, show_progress=False)
    first = _study(run_dir).trials[0]
    assert first.user_attrs["preset"] == "tiny_ref"
    assert len(first.user_attrs["rungs"]) == 2 and first.user_attrs["rungs"][0]["promoted"] is True
    reference = load_arch(space_dir / "presets" / "tiny_ref.yaml").with_overrides(imgsz=64)
    assert first.user_attrs["arch_hash"] == reference.hash and first.user_attrs["arch_name"] == "tiny_ref"
    assert all(t.user_attrs.get("preset") in (None, "tiny_ref") for t in _study(run_dir).trials)


def test_results_and_pareto_command(tmp_path: Path, predicted_latency: None) -> None:
    run_dir = tmp_path / "run"
    run_search(experiment(tmp_path, trials=8, extra="suite: {models: 2}\n"), run_dir, show_progress=False)
    for name in ("trials.csv", "pareto.csv", "pareto.png", "hypervolume.csv", "suite.csv", "summary.json"):
        assert (run_dir / name).stat().st_size > 0, name
    hv = pd.read_csv(run_dir / "hypervolume.csv")
    assert (hv.hypervolume_screen.diff().dropna() >= -1e-12).all() and hv.hypervolume_screen.iloc[-1] > 0
    suite = sorted((run_dir / "suite").glob("*.yaml"))
    assert 1 <= len(suite) <= 2
    for f in suite:
        assert load_arch(f).data["imgsz"] == 64
    result = runner.invoke(app, ["pareto", str(run_dir), "--json", "--plot", str(tmp_path / "front.png")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc and set(doc[0]) >= {"trial", "latency_ms", "accuracy", "accuracy_kind", "params", "gflops", "arch"}
    lat = [e["latency_ms"] for e in doc]
    acc = [e["accuracy"] for e in doc]
    assert lat == sorted(lat) and acc == sorted(acc), "a front sorted by latency gains accuracy"
    assert all(Path(e["arch"]).is_file() and load_arch(e["arch"]).hash for e in doc)
    assert (tmp_path / "front.png").stat().st_size > 10_000
    table = runner.invoke(app, ["pareto", str(run_dir)])  # the table, off a terminal: full names, labels
    assert table.exit_code == 0, table.output
    assert all(e["name"] in table.stdout for e in doc)
    assert table.stdout.count("predicted") == len(doc) and "measured" not in table.stdout


def test_a_used_run_directory_needs_resume(tmp_path: Path, predicted_latency: None) -> None:
    run_dir = tmp_path / "run"
    path = experiment(tmp_path, trials=2)
    first = run_search(path, run_dir, show_progress=False)
    # finished or not, whatever the budget: without --resume a used run directory is refused, with a hint
    for budget in ([], ["--trials", "1"], ["--trials", "2"], ["--trials", "3"]):
        result = runner.invoke(app, ["search", str(path), "--out", str(run_dir), *budget])
        assert result.exit_code == 2 and "an existing search run" in result.output, budget
        assert "--resume" in result.output and result.output.count("\n") == 1
    again = run_search(path, run_dir, resume=True, show_progress=False)  # finished: the same results again
    assert again["trials"] == first["trials"] and again["front"] == first["front"]
    path.write_text(path.read_text().replace("screen: {proxy: flops}", "screen: {proxy: params}"))
    result = runner.invoke(app, ["search", str(path), "--out", str(run_dir), "--resume"])
    assert result.exit_code == 2 and "a changed experiment" in result.output


def test_two_worker_processes_share_one_study(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    path = experiment(tmp_path, trials=6, extra="sampler: random\nexecutor: {workers: 2}\n")
    doc = run_search(path, run_dir, show_progress=False)
    study = _study(run_dir)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 6 <= len(done) <= 7 and doc["trials"]["complete"] == len(done)
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2, workers
    assert all(int(w.rsplit(":", 1)[1]) != os.getpid() for w in workers)
    assert all(t.user_attrs["latency_measured"] is True for t in done)


def test_experiment_scale_sets_body_and_head_widths(tmp_path: Path) -> None:
    from nasearch.search.candidate import SearchContext
    from nasearch.search.experiment import load_experiment
    from nasearch.space.arch import load_presets, presets_dir
    from nasearch.space.decisions import ReplayChooser
    from nasearch.space.space import decision_values

    path = experiment(
        tmp_path, space=SPACES / "yolo_nas_space.yaml", extra="scale: {width: 0.25, depth: 0.5, head_width: 0.5}\n"
    )
    ctx = SearchContext.create(load_experiment(path))
    preset = load_presets(presets_dir())["yolo_nas_s"]
    values = decision_values(ctx.space, preset)
    assert values is not None
    arch = ctx.architecture(ctx.space.resolve(ReplayChooser(values)), preset="yolo_nas_s")
    assert arch.data["head"]["width_mult"] == pytest.approx(preset.data["head"]["width_mult"] * 0.5)
    assert arch.data["backbone"]["stages"][0]["out"] == preset.data["backbone"]["stages"][0]["out"] // 4
    assert arch.data["imgsz"] == 64 and arch.name.startswith("yolo_nas_s")
