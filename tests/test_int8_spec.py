"""One INT8 quantizer: the graph `latency --precision int8` times is the graph `export` ships."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import ensure_synthetic
from nasearch.latency import onnxrt
from nasearch.latency.onnxrt import OnnxRuntimeBackend
from nasearch.latency.stats import TimingPolicy
from nasearch.nn.inspect import fused_copy, randomize_bn
from nasearch.onnxio.isa import ISA_ENV
from nasearch.onnxio.qdq import quantized_nodes
from nasearch.space import build_model, load_arch
from nasearch.train.checkpoint import save_checkpoint

IMGSZ = 64


def test_measured_and_exported_int8_graphs_quantize_the_same_nodes(tmp_path, monkeypatch):
    isa = "no-vnni"  # forced, so the reduced-range spec is compared on every machine (test_quant covers both)
    monkeypatch.setenv(ISA_ENV, isa)
    torch.manual_seed(0)
    arch = load_arch("yolov6n").with_overrides(nc=10)  # its neck upsamples with transposed convolutions
    model = randomize_bn(build_model(arch), seed=1).eval()  # BN statistics as training leaves them
    ckpt = save_checkpoint(
        {"arch": arch.data, "model": model.state_dict(), "train_args": {"imgsz": IMGSZ}}, tmp_path / "best.pt"
    )
    data = ensure_synthetic(tmp_path / "synth", images=6, imgsz=IMGSZ, seed=3)
    result = CliRunner().invoke(
        app,
        [
            "export",
            str(ckpt),
            "--format",
            "onnx-int8",
            "--data",
            str(data),
            "--calib-images",
            "4",
            "--imgsz",
            str(IMGSZ),
            "--out",
            str(tmp_path / "out"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)["files"]["onnx-int8"]

    measured: list[Path] = []
    real = onnxrt.make_session

    def keep(path, threads, provider):  # the graph the backend is about to time
        measured.append(Path(shutil.copy(path, tmp_path / f"measured{len(measured)}.onnx")))
        return real(path, threads, provider)

    monkeypatch.setattr(onnxrt, "make_session", keep)
    backend = OnnxRuntimeBackend("int8", policy=TimingPolicy(warmup_runs=1, min_runs=2, max_runs=2))
    backend.measure_model(fused_copy(model), IMGSZ)

    assert len(measured) == 1
    ours, theirs = quantized_nodes(measured[0]), quantized_nodes(exported["path"])
    assert ours == theirs and all(ours.values())
    assert any("ConvTranspose" in name for name in ours)
    assert backend.fingerprint().extra["int8_spec"] == exported["int8_spec"]["name"]
    assert ("w7" in exported["int8_spec"]["name"]) == (isa == "no-vnni")
