"""Malformed experiment files and options end in exit 2 with one precise `error:` line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.search.experiment import experiment_from_dict, load_experiment
from tests.conftest import ROOT, SPACES

runner = CliRunner()

BASE = f"""name: tiny-exp
space: {SPACES / "tiny_space.yaml"}
imgsz: 64
objectives:
  latency: {{source: measure, backend: onnxruntime}}
  accuracy:
    screen: {{proxy: flops}}
    rungs: [{{proxy: params}}]
trials: 3
"""

CASES = {
    "unknown_key": (BASE.replace("trials: 3", "trails: 3"), "trails", "did you mean 'trials'"),
    "bad_sampler": (BASE + "sampler: cmaes\n", "sampler", "'nsga2'"),
    "screen_history": (
        BASE + "latency_screen: {min_history: 1}\n",
        "latency_screen.min_history",
        "greater than or equal to 3",
    ),
    "zero_trials": (BASE.replace("trials: 3", "trials: 0"), "trials", "greater than or equal to 1"),
    "db_without_path": (BASE.replace("source: measure", "source: database"), "objectives.latency", "a `db` path"),
    "target_without_name": (BASE.replace("source: measure", "source: target"), "objectives.latency", "a `target`"),
    "hybrid_without_int8": (
        BASE.replace(
            "source: measure, backend: onnxruntime", "source: target, target: t4-tensorrt, float_layers: ['head.*']"
        ),
        "objectives.latency",
        "`float_layers` (hybrid INT8) only with",
    ),
    "missing_space": (BASE.replace(str(SPACES / "tiny_space.yaml"), "nowhere/space.yaml"), "space", "no such file"),
    "unknown_proxy": (
        BASE.replace("proxy: flops", "proxy: flopz"),
        "objectives.accuracy.screen.proxy",
        "a registered proxy",
    ),
    "unknown_budget_key": (
        BASE.replace("{proxy: params}", "{proxy: params, budget: {epochs: 3}}"),
        "objectives.accuracy.rungs[0].budget.epochs",
        "unknown key 'epochs'",
    ),
    "both_suite_forms": (BASE + "suite: {models: 3, latency_targets_ms: [1, 2]}\n", "suite", "not both"),
    "bad_eta": (BASE.replace("rungs:", "eta: 1\n    rungs:"), "objectives.accuracy.eta", "greater than 1"),
    "bad_imgsz": (BASE.replace("imgsz: 64", "imgsz: 65"), "imgsz", "multiple of 32"),
    "unknown_preset": (BASE + "presets: [yolov9z]\n", "presets[0]", "a preset name"),
    "not_a_mapping": ("- 1\n- 2\n", "<root>", "a YAML mapping"),
    "bad_resource": (
        BASE + "executor: {kind: ray, resources: {CPU: -1}}\n",
        "executor.resources.CPU",
        "greater than or equal to 0",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_experiment_exits_2_with_one_line(case: str, tmp_path: Path) -> None:
    text, where, words = CASES[case]
    exp = tmp_path / "exp.yaml"
    exp.write_text(text)
    result = runner.invoke(app, ["search", str(exp), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {exp}: {where}: expected"), lines[0]
    assert words in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "study.db").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["--sampler", "annealing"],
            "--sampler: sampler: expected nsga2 | nsga3 | tpe | motpe | gp | surrogate | random",
        ),
        (["--executor", "slurm"], "--executor: executor: expected local | ray"),
        (["--trials", "0"], "--trials: trials: expected a positive integer"),
        (["--workers", "0"], "--workers: workers: expected a positive integer"),
    ],
)
def test_bad_options_exit_2(args: list[str], words: str, tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(BASE)
    result = runner.invoke(app, ["search", str(exp), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {words}, found ")


def test_resume_without_a_run_and_pareto_of_nothing_exit_2(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(BASE)
    result = runner.invoke(app, ["search", str(exp), "--out", str(tmp_path / "empty"), "--resume"])
    assert result.exit_code == 2
    assert "a search run directory (with run.json)" in result.output
    result = runner.invoke(app, ["pareto", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "no such directory" in result.output


def test_bad_storage_url_exits_2(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(BASE + "storage: 'notadb://nowhere'\n")
    result = runner.invoke(app, ["search", str(exp), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "a reachable Optuna storage URL" in result.output


def test_shipped_experiments_validate_and_resolve_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCO_DIR", str(tmp_path))
    quick = load_experiment("quickstart")
    assert quick.space_path == (ROOT / "search_spaces" / "nano_union_space.yaml").resolve()
    assert quick.spec.objectives.latency.source == "measure"
    assert quick.spec.objectives.accuracy.rungs, "the quickstart promotes to short training"
    t4 = load_experiment(ROOT / "experiments" / "t4_coco.yaml")
    assert t4.spec.objectives.latency.target == "t4-tensorrt"
    assert t4.spec.objectives.latency.precision == "fp16"
    assert t4.spec.imgsz == 640
    assert t4.dataset_path == tmp_path.resolve()
    monkeypatch.setenv("COCO_DIR", str(tmp_path / "missing"))
    result = runner.invoke(app, ["search", "t4_coco", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "dataset.path: expected an existing dataset" in result.output


def test_shipped_data_resolves_by_bare_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nasearch.resources import shipped
    from nasearch.space import load_arch, load_space

    monkeypatch.chdir(tmp_path)
    shipped_space = shipped("search_spaces", "tiny_space.yaml").resolve()
    exp = experiment_from_dict({"name": "n", "space": "tiny_space", "trials": 1}, str(tmp_path / "e.yaml"))
    assert exp.space_path == shipped_space
    assert load_space("tiny_space").source == str(shipped("search_spaces", "tiny_space.yaml"))
    assert load_arch("yolov8n").name == "yolov8n"
    assert (ROOT / "search_spaces").resolve() == shipped("search_spaces").resolve()  # one copy, two paths
    (tmp_path / "tiny_space").write_text("")  # a local file of that name wins over the shipped space
    assert (
        experiment_from_dict(
            {"name": "n", "space": "tiny_space", "trials": 1, "presets": False}, str(tmp_path / "e.yaml")
        ).space_path
        == tmp_path / "tiny_space"
    )


def test_a_search_scores_int8_and_hybrid_t4_latency(tmp_path: Path) -> None:
    from nasearch.search.experiment import LatencySpec
    from nasearch.search.objectives import LatencyEvaluator
    from nasearch.space import load_arch

    arch = load_arch("yolov8n")
    got = {}
    for name, extra in (("fp16", {}), ("int8", {}), ("hybrid", {"float_layers": ["head.*"]})):
        spec = LatencySpec(
            source="target", target="t4-tensorrt", precision="fp16" if name == "fp16" else "int8", **extra
        )
        got[name] = LatencyEvaluator(spec, 640, None).screen(arch, None)
        assert got[name].measured is False
    assert got["int8"].ms < got["hybrid"].ms < got["fp16"].ms
    assert got["hybrid"].details["float_layers"] > 0 and "hybrid" in got["hybrid"].method


def test_fingerprint_ignores_budget_but_not_objectives(tmp_path: Path) -> None:
    from nasearch.search.experiment import experiment_from_dict

    a = load_experiment(_write(tmp_path, BASE))
    assert a.with_overrides(trials=50, sampler="random").fingerprint() == a.fingerprint()
    changed = experiment_from_dict({**a.raw, "constraints": {"latency_ms": 3.0}}, a.file)
    assert changed.fingerprint() != a.fingerprint()
    # the latency screen decides what is measured, not what a measurement is: a run started before it
    # existed, or with it turned off, resumes under the same fingerprint
    off = experiment_from_dict({**changed.raw, "latency_screen": {"enabled": False, "min_history": 12}}, a.file)
    assert off.fingerprint() == changed.fingerprint()
    assert changed.spec.latency_screen.enabled and not off.spec.latency_screen.enabled


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "e.yaml"
    p.write_text(text)
    return p


def test_trees_experiment_validates_and_its_dataset_source_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nasearch.errors import InputError
    from nasearch.search.objectives import dataset_provider

    trees = load_experiment("trees_cpu")
    assert trees.spec.dataset.trees is not None and trees.spec.nc == 1 and trees.dataset_path is None
    assert trees.spec.objectives.accuracy.rungs, "the trees search promotes to short training"
    both = _write(tmp_path, BASE + "dataset: {path: x, trees: {tile: 128}}\n")
    result = runner.invoke(app, ["search", str(both), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "either `path` or `trees`" in result.output
    bogus = tmp_path / "bogus.whl"
    bogus.write_bytes(b"not the wheel")
    monkeypatch.setenv("NASEARCH_CACHE", str(tmp_path / "cache"))
    exp = load_experiment(_write(tmp_path, BASE + f"dataset: {{trees: {{wheel: {bogus}}}}}\n"))
    with pytest.raises(InputError, match="sha256"):
        dataset_provider(exp)()
    assert exp.fingerprint() != load_experiment(_write(tmp_path, BASE)).fingerprint()
