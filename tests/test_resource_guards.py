"""The resource guard (issue 17): models that cannot fit are refused before allocation, with exit 2 and one line
naming the file; search candidates over the limit are rejected with the reason; processes bounded by cores and
memory. The limit is set through the environment so that nothing here depends on this machine's free memory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.search import promotion
from nasearch.search.candidate import DictRecorder, SearchContext, evaluate
from nasearch.search.experiment import load_experiment
from nasearch.space import load_arch
from nasearch.space.memory import GUARD_ENV, MemoryLimitError, available_bytes, check_workers, estimate, usable_cores
from tests.conftest import PRESETS, SPACES

runner = CliRunner()
HUGE = """name: huge
backbone:
  stem: {type: conv_stem, out: 64}
  stages:
    - {type: c2f_stage, out: 4096, blocks: 16, e: 1.0}
    - {type: c2f_stage, out: 4096, blocks: 16, e: 1.0}
    - {type: c2f_stage, out: 4096, blocks: 16, e: 1.0}
    - {type: c2f_stage, out: 4096, blocks: 16, e: 1.0}
  context: {type: sppf, out: 4096}
neck: {type: v8_pan, up1: {out: 4096, blocks: 16}, up2: {out: 4096, blocks: 16}, down1: {out: 4096, blocks: 16},
       down2: {out: 4096, blocks: 16}}
head: {type: v8_head}
"""


def _one_error_line(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_verify_of_a_huge_schema_valid_architecture_is_refused_before_allocation(tmp_path, monkeypatch):
    """28 G parameters (112 GB of weights) inside the schema's limits: refused in seconds, not built."""
    monkeypatch.setenv(GUARD_ENV, "16")
    f = tmp_path / "huge.yaml"
    f.write_text(HUGE)
    start = time.perf_counter()
    line = _one_error_line(runner.invoke(app, ["model", "verify", str(f)]), str(f), "16.0 GB", "G parameters")
    assert "--max-memory" in line and time.perf_counter() - start < 30


def test_estimate_counts_parameters_like_the_built_model_and_grows_with_the_image():
    arch = load_arch(PRESETS / "yolov8n.yaml")
    small, large = estimate(arch, 320), estimate(arch, 640)
    assert small.params == 3_157_184  # the published yolov8n count, as `model info` reports it
    assert large.activation_floats == pytest.approx(4 * small.activation_floats, rel=0.01)
    assert large.training_bytes(8) > large.training_bytes(1) > large.inference_bytes() > large.weights_bytes


def test_every_building_command_honours_the_limit_and_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv(GUARD_ENV, "0.001")  # 1 MB: yolov8n's 12.6 MB of weights do not fit
    for args in (
        ["model", "verify", "yolov8n"],
        ["latency", "measure", "yolov8n", "--backend", "torch"],
        ["export", "yolov8n", "--format", "yaml", "--out", str(tmp_path / "e")],
        ["proxy", "score", "yolov8n", "--proxy", "params"],
    ):
        _one_error_line(runner.invoke(app, args), "yolov8n", "0.0 GB")
    assert not (tmp_path / "e").exists()
    ok = runner.invoke(app, ["--no-memory-guard", "model", "verify", "yolov8n", "--imgsz", "64", "--json"])
    assert ok.exit_code == 0, ok.output
    raised = runner.invoke(app, ["--max-memory", "8", "model", "verify", "yolov8n", "--imgsz", "64", "--json"])
    assert raised.exit_code == 0, raised.output


def test_model_info_reports_memory_without_enforcing_it(monkeypatch):
    monkeypatch.setenv(GUARD_ENV, "0.001")
    result = runner.invoke(app, ["model", "info", "yolov8n", "--json"])
    assert result.exit_code == 0, result.output
    mem = json.loads(result.stdout)["memory_gb"]
    assert mem["weights"] == pytest.approx(3_157_184 * 4 / 1e9, abs=1e-3)
    assert mem["training_batch_1"] > mem["inference"] > mem["weights"] and mem["available"] > 0


def test_bad_max_memory_is_exit_2():
    _one_error_line(runner.invoke(app, ["--max-memory", "0", "model", "info", "yolov8n"]), "--max-memory")


def test_workers_bounded_by_cores_and_memory(tmp_path, monkeypatch):
    monkeypatch.setenv(GUARD_ENV, "64")
    too_many = usable_cores() + 1
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "search",
            str(SPACES.parent / "experiments" / "quickstart.yaml"),
            "--out",
            str(out),
            "--workers",
            str(too_many),
            "--no-progress",
        ],
    )
    _one_error_line(result, "--workers", f"at most {usable_cores()} processes", "usable cores")
    assert not out.exists()
    monkeypatch.setenv(GUARD_ENV, "1.5")  # room for one process of ~1 GB
    with pytest.raises(MemoryLimitError, match="GB free"):
        check_workers(2 if usable_cores() >= 2 else 1, per_core=2)
    assert available_bytes() > 0


def _context(tmp_path: Path) -> SearchContext:
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""name: guard
space: {SPACES / "tiny_space.yaml"}
imgsz: 64
objectives:
  latency: {{source: measure, backend: torch}}
  accuracy: {{screen: {{proxy: params}}}}
presets: false
trials: 2
""")
    return SearchContext.create(load_experiment(exp))


def test_search_candidate_over_the_limit_is_rejected_with_the_reason_not_built(tmp_path, monkeypatch):
    ctx = _context(tmp_path)
    data = ctx.space.sample(0).data
    monkeypatch.setenv(GUARD_ENV, "0.00001")  # 10 kB
    rec = DictRecorder()
    outcome = evaluate(ctx, data, "0", rec, promotion.MemoryBoard())
    assert outcome.state == "rejected" and "memory" in outcome.constraints
    assert "GB" in rec.attrs["rejected"] and "build" in rec.attrs["rejected"]
    assert "params" not in rec.attrs  # never built, never counted


def test_search_candidate_whose_activations_do_not_fit_is_rejected_before_it_is_built(tmp_path, monkeypatch):
    ctx = _context(tmp_path)
    arch = ctx.space.sample(0)
    data = arch.data
    est = estimate(arch, ctx.latency.imgsz)
    between = (est.weights_bytes + est.inference_bytes()) / 2  # the weights fit, inference does not
    assert est.weights_bytes < between < est.inference_bytes()
    monkeypatch.setenv(GUARD_ENV, repr(between / 1e9))
    rec = DictRecorder()
    outcome = evaluate(ctx, data, "0", rec, promotion.MemoryBoard())
    assert outcome.state == "rejected" and "memory" in outcome.constraints
    assert "inference" in rec.attrs["rejected"], rec.attrs["rejected"]
    assert "params" not in rec.attrs


def test_training_is_refused_on_its_estimate_before_the_model_is_built(tmp_path, monkeypatch):
    """Weights fit, training at batch 64 and 640 px (saved activations) does not."""
    from nasearch.data import generate_synthetic

    data = tmp_path / "syn"
    generate_synthetic(data, images=10, imgsz=64, seed=0)
    est = estimate(load_arch("yolov8n"), 640)
    limit_gb = (est.training_bytes(1) + est.training_bytes(64)) / 2 / 1e9  # between batch 1 and batch 64
    monkeypatch.setenv(GUARD_ENV, f"{limit_gb:.3f}")
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "yolov8n",
            "--data",
            str(data),
            "--epochs",
            "1",
            "--imgsz",
            "640",
            "--batch",
            "64",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]  # after the progress line saying nc 80 -> 10
    assert line.startswith("error: ") and "yolov8n" in line and "training at batch 64" in line, result.output
    assert "3.14 M parameters" in line and "Traceback" not in result.output and not (out / "weights").exists()
