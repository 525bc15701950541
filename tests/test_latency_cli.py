"""`nasearch latency ...` end to end: JSON fields, measured/predicted labels, exit codes on bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.errors import OPTION, InputError
from nasearch.onnxio.export import export_detector, raw_output_names
from nasearch.space import build_model, load_arch
from tests.fixtures import micro_space

runner = CliRunner()

ARCH = micro_space()


@pytest.fixture(scope="module")
def arch_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "micro.yaml"
    path.write_text(ARCH)
    return path


def run(*args: str):
    return runner.invoke(app, list(args))


def test_measure_json_is_labelled_measured(arch_path, tmp_path):
    result = run(
        "latency",
        "measure",
        str(arch_path),
        "--backend",
        "onnxruntime",
        "--quick",
        "--json",
        "--db",
        str(tmp_path / "lat.db"),
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {
        "backend",
        "device",
        "precision",
        "imgsz",
        "batch",
        "median_ms",
        "p10_ms",
        "p90_ms",
        "runs",
        "measured",
    } <= set(doc)
    assert doc["measured"] is True and doc["backend"] == "onnxruntime" and doc["precision"] == "fp32"
    assert doc["imgsz"] == 64 and doc["batch"] == 1 and doc["runs"] >= 5
    assert 0 < doc["p10_ms"] <= doc["median_ms"] <= doc["p90_ms"]
    info = json.loads(run("latency", "info", str(tmp_path / "lat.db"), "--json").stdout)
    assert info["integrity"] == "ok" and info["fingerprints"][0]["networks"] == 1


@pytest.mark.parametrize(("backend", "precision", "clock"), [("onnxruntime", "int8", "cpu"), ("torch", "fp32", "cpu")])
def test_other_backends_and_precisions_measure_too(arch_path, backend, precision, clock):
    result = run(
        "latency",
        "measure",
        str(arch_path),
        "--backend",
        backend,
        "--precision",
        precision,
        "--quick",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["backend"], doc["precision"], doc["clock"], doc["measured"]) == (
        backend,
        precision,
        clock,
        True,
    )
    assert 0 < doc["p10_ms"] <= doc["median_ms"] <= doc["p90_ms"]


def test_predict_from_a_db_is_labelled_predicted(arch_path, tmp_path):
    db = str(tmp_path / "lat.db")
    result = run("latency", "predict", str(arch_path), "--db", db, "--json")
    assert result.exit_code == 2  # no such database yet
    assert "no such file" in result.output
    space = tmp_path / "one.yaml"
    space.write_text(ARCH.replace("name: micro", "name: one"))
    prof = run(
        "latency",
        "profile",
        str(space),
        "--backend",
        "onnxruntime",
        "--db",
        db,
        "--quick",
        "--json",
        "--networks",
        "1",
    )
    assert prof.exit_code == 0, prof.output
    report = json.loads(prof.stdout)
    assert report["signatures"] == report["measured_now"] == 21 and report["coverage"] == 1.0
    result = run("latency", "predict", str(arch_path), "--db", db, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"target", "precision", "imgsz", "batch", "predicted_ms", "method", "measured"} <= set(doc)
    assert doc["measured"] is False and doc["method"] == "blocks+overhead" and doc["predicted_ms"] > 0
    assert doc["units_measured_now"] == 0
    bigger = run("latency", "predict", str(arch_path), "--db", db, "--imgsz", "96", "--missing", "estimate", "--json")
    assert bigger.exit_code == 0, bigger.output
    est = json.loads(bigger.stdout)
    assert est["units_estimated"] == 21 and est["method"] == "blocks+estimates+overhead"
    refused = run("latency", "predict", str(arch_path), "--db", db, "--imgsz", "96", "--missing", "error")
    assert refused.exit_code == 2 and "21 of 21 distinct blocks missing" in refused.output

    # the same policy without the CLI: a machine that cannot run the stored backend predicts from the stored
    # figures (the database's one fingerprint), estimating what is missing, and measures nothing
    from nasearch.latency.predict import predict_latency

    def cannot_run_here():
        raise InputError(OPTION, "backend", "a backend this machine runs", "onnxruntime")

    away = predict_latency(db, load_arch(str(arch_path)), 96, cannot_run_here, "fp32", 1)
    assert away["units_estimated"] == 21 and away["units_measured_now"] == 0
    assert away["fingerprint_id"] == doc["fingerprint_id"]


def test_predict_t4_dispatches_to_the_model_or_says_it_is_missing(arch_path, monkeypatch):
    result = run("latency", "predict", str(arch_path), "--target", "t4-tensorrt", "--json")
    if result.exit_code == 0:
        doc = json.loads(result.stdout)
        assert doc["measured"] is False and doc["target"] == "t4-tensorrt" and doc["predicted_ms"] > 0
    else:
        assert result.exit_code == 2
    monkeypatch.setitem(sys.modules, "nasearch.latency.t4_model", None)  # import now fails
    missing = run("latency", "predict", str(arch_path), "--target", "t4-tensorrt")
    assert missing.exit_code == 2
    assert "T4" in missing.output and "Traceback" not in missing.output


def test_predict_t4_hybrid_reads_a_quantize_report(arch_path, tmp_path):
    report = tmp_path / "quantize.json"
    report.write_text(json.dumps({"mode": "hybrid", "float_layers": ["/stem/conv/Conv"]}))
    base = ["latency", "predict", str(arch_path), "--target", "t4-tensorrt", "--precision", "int8", "--json"]
    int8, hybrid = run(*base), run(*base, "--float-layers", str(report))
    assert int8.exit_code == hybrid.exit_code == 0, hybrid.output
    a, b = json.loads(int8.stdout), json.loads(hybrid.stdout)
    assert (a["mode"], b["mode"], b["float_layers"]) == ("int8", "hybrid", 1)
    assert b["predicted_ms"] > a["predicted_ms"] and b["measured"] is False
    inline = run(*base, "--float-layers", "stem.conv")
    assert json.loads(inline.stdout)["predicted_ms"] == b["predicted_ms"]


@pytest.mark.parametrize(
    "args",
    [
        ["latency", "predict", "ARCH", "--target", "t4-tensorrt", "--precision", "int8", "--float-layers", "x.y"],
        ["latency", "predict", "ARCH", "--target", "t4-tensorrt", "--float-layers", "stem.conv"],
        [
            "latency",
            "predict",
            "ARCH",
            "--target",
            "t4-tensorrt",
            "--precision",
            "int8",
            "--float-layers",
            "missing.json",
        ],
        ["latency", "predict", "ARCH", "--db", "x.db", "--float-layers", "stem.conv"],
        ["latency", "measure", "ARCH", "--imgsz", "100"],
        ["latency", "measure", "ARCH", "--backend", "tensorflow"],
        ["latency", "measure", "ARCH", "--precision", "fp8"],
        ["latency", "measure", "ARCH", "--precision", "fp16"],
        ["latency", "measure", "ARCH", "--threads", "0"],
        ["latency", "measure", "ARCH", "--threads", "2", "--clock", "cpu"],
        ["latency", "measure", "ARCH", "--backend", "tensorrt"],
        ["latency", "measure", "ARCH", "--backend", "torch", "--precision", "int8"],
        ["latency", "predict", "ARCH"],
        ["latency", "predict", "ARCH", "--db", "x.db", "--target", "t4-tensorrt"],
        ["latency", "predict", "ARCH", "--target", "a100"],
        ["latency", "predict", "ARCH", "--db", "x.db", "--missing", "guess"],
        ["latency", "measure", "no-such-arch.yaml"],
    ],
)
def test_bad_input_exits_2_with_one_line(args, arch_path):
    result = run(*[str(arch_path) if a == "ARCH" else a for a in args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["latency", "measure", "ARCH", "--precision", "fp16"], "error: --precision: precision: expected"),
        (["latency", "measure", "ARCH", "--threads", "2", "--clock", "cpu"], "error: --clock: clock: expected"),
        (["latency", "predict", "ARCH", "--db", "x.db", "--missing", "guess"], "error: --missing: missing: expected"),
    ],
)
def test_a_bad_option_value_raised_by_the_library_is_named_by_its_flag(args, start, arch_path):
    result = run(*[str(arch_path) if a == "ARCH" else a for a in args])
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith(start), result.output


def test_library_errors_name_the_field_not_a_flag():
    from nasearch.cli.common import as_flag
    from nasearch.latency.backend import get_backend

    with pytest.raises(InputError) as err:
        get_backend("nope")
    assert (err.value.file, err.value.path) == (OPTION, "backend")
    assert (
        as_flag(InputError(OPTION, "max_drop", "x", "y")).line() == "error: --max-drop: max_drop: expected x, found y"
    )
    other = InputError("a.yaml", "imgsz", "x", "y")
    assert as_flag(other) is other


def test_tensorrt_without_a_gpu_names_the_alternatives(arch_path):
    from nasearch.latency.tensorrt_backend import gpu_status

    if gpu_status()[0]:
        pytest.skip("this machine can run TensorRT")
    result = run("latency", "measure", str(arch_path), "--backend", "tensorrt")
    assert result.exit_code == 2
    assert "--backend onnxruntime" in result.output and "t4-tensorrt" in result.output


def test_export_detector_writes_a_checked_static_onnx(tmp_path, arch_path, one_thread):
    arch = load_arch(arch_path)
    torch.manual_seed(0)
    model = build_model(arch).eval()
    path = export_detector(model, tmp_path / "d.onnx", imgsz=64, batch=2)
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version >= 17
    assert [o.name for o in graph.graph.output] == ["boxes", "scores"]
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 64, 64]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want_boxes, want_scores = model(x)
    boxes, scores = ort.InferenceSession(str(path)).run(None, {"images": x.numpy()})
    assert boxes.shape == (2, 84, 4) and scores.shape == (2, 84, 4)
    assert torch.allclose(torch.from_numpy(boxes), want_boxes, atol=1e-3)
    assert torch.allclose(torch.from_numpy(scores), want_scores, atol=1e-4)
    assert any(m.training is False for m in model.modules()) and not model.export_raw  # the model is untouched
    raw = export_detector(model, tmp_path / "r.onnx", imgsz=64, raw=True)
    assert [o.name for o in onnx.load(str(raw)).graph.output] == raw_output_names()
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files
