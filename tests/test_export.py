"""`nasearch export`: every format, ONNX checked and matched against PyTorch, NMS in the graph, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import ensure_synthetic
from nasearch.export.nms import DetectorWithNMS
from nasearch.nn.inspect import randomize_bn
from nasearch.onnxio.export import export_module
from nasearch.onnxio.qdq import quantized_nodes
from nasearch.onnxio.spec import int8_spec
from nasearch.space import build_model, load_space
from nasearch.train.checkpoint import load_checkpoint, save_checkpoint

IMGSZ = 64


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_space_path):
    """A checkpoint with non-trivial weights and BN statistics (as training leaves them) and a dataset."""
    root = tmp_path_factory.mktemp("export")
    arch = load_space(tiny_space_path).sample(1).with_overrides(nc=10)
    torch.manual_seed(0)
    model = randomize_bn(build_model(arch), seed=1)
    ckpt = save_checkpoint(
        {
            "arch": arch.data,
            "model": model.state_dict(),
            "train_args": {"imgsz": IMGSZ},
            "class_names": [f"c{i}" for i in range(10)],
        },
        root / "best.pt",
    )
    return ckpt, ensure_synthetic(root / "synth", images=12, imgsz=IMGSZ, seed=4)


def _export(args: list[str]) -> dict:
    result = CliRunner().invoke(app, ["export", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _run(path, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})


def test_checkpoint_to_every_cpu_format(trained, tmp_path):
    ckpt, data = trained
    doc = _export(
        [
            str(ckpt),
            "--format",
            "yaml,torch,onnx,onnx-int8",
            "--data",
            str(data),
            "--calib-images",
            "6",
            "--out",
            str(tmp_path),
        ]
    )
    files = doc["files"]
    assert set(files) == {"yaml", "torch", "onnx", "onnx-int8"} and doc["ok"] and doc["trained"]
    assert json.loads((tmp_path / "export.json").read_text()) == doc
    # the exported checkpoint and YAML describe the same detector
    model, arch, state = load_checkpoint(files["torch"]["path"])
    assert "optimizer" not in state and arch.hash == doc["hash"]
    assert load_checkpoint(ckpt)[1].hash == arch.hash
    # the float ONNX: checker, opset, decoded outputs, and ONNX Runtime matches PyTorch (checked here again)
    proto = onnx.load(files["onnx"]["path"])
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version >= 17
    assert [o.name for o in proto.graph.output] == ["boxes", "scores"]
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)  # fused deploy form
    x = np.random.default_rng(11).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    with torch.no_grad():
        boxes, scores = model(torch.from_numpy(x))
    got_boxes, got_scores = _run(files["onnx"]["path"], x)
    assert np.abs(got_boxes - boxes.numpy()).max() <= 0.01
    assert np.abs(got_scores - scores.numpy()).max() <= 1e-4
    check = files["onnx"]["verification"]
    assert check["ok"] and check["max_abs_diff_boxes_px"] <= check["tolerance"]["boxes_px"]
    # the INT8 ONNX: a QDQ graph with every conv quantized, close to the float model
    int8 = files["onnx-int8"]
    assert int8["activations"] == "u8" and int8["verification"]["ok"]
    assert int8["int8_spec"] == int8_spec("cpu").as_dict()  # this CPU's spec (reduce_range without VNNI)
    states = quantized_nodes(int8["path"])
    assert states and all(states.values()) and int8["verification"]["quantized_convs"] == len(states)
    q_scores = _run(int8["path"], x)[1]
    assert np.abs(q_scores - scores.numpy()).mean() < 0.02


def test_architecture_yaml_with_nms(tiny_space_path, tmp_path):
    arch_file = load_space(tiny_space_path).sample(2).save(tmp_path / "a.yaml")
    doc = _export(
        [str(arch_file), "--format", "onnx", "--nms", "--conf", "0.0001", "--imgsz", "96", "--out", str(tmp_path / "o")]
    )
    assert doc["trained"] is False and doc["imgsz"] == 96 and set(doc["files"]) == {"onnx", "onnx-nms"}
    nms = doc["files"]["onnx-nms"]
    proto = onnx.load(nms["path"])
    onnx.checker.check_model(proto)
    assert "NonMaxSuppression" in {n.op_type for n in proto.graph.node}
    assert nms["verification"]["ok"] and nms["verification"]["detections_onnx"] > 0
    dets = _run(nms["path"], np.random.default_rng(0).random((1, 3, 96, 96), dtype=np.float32))[0]
    assert dets.shape[1] == 7 and len(dets) <= 300
    assert np.all(np.diff(dets[:, 5]) <= 0)  # best first


class _Boxes(nn.Module):
    """A stand-in detector whose boxes and scores are read off the input (so they are well spread)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x[:, :4].flatten(2).transpose(1, 2)
        xy, wh = b[..., :2] * 100, b[..., 2:] * 30 + 1
        return torch.cat([xy, xy + wh], -1), x[:, 4:].flatten(2).transpose(1, 2)


@pytest.mark.parametrize("conf, max_det", [(0.3, 40), (0.9, 300), (0.999, 10)])
def test_nms_graph_equals_torch(tmp_path, conf, max_det):
    torch.manual_seed(0)
    x = torch.rand(1, 7, 16, 16)  # 256 boxes, 3 classes
    wrapped = DetectorWithNMS(_Boxes(), conf=conf, iou=0.5, max_det=max_det).eval()
    with torch.no_grad():
        ref = wrapped(x).numpy()
    path = export_module(wrapped, [x], tmp_path / "nms.onnx", ["images"], ["detections"])
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    assert got.shape == ref.shape and len(ref) <= max_det
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert (ref[:, 5] > conf).all() and set(np.unique(ref[:, 6])) <= {0.0, 1.0, 2.0}


def test_trial_of_a_search_run(tiny_space_path, tmp_path):
    run = tmp_path / "run"
    arch = load_space(tiny_space_path).sample(3)
    arch.save(run / "archs" / "trial_00007.yaml")
    doc = _export([str(run), "--trial", "7", "--format", "yaml", "--out", str(tmp_path / "o")])
    assert doc["hash"] == arch.hash and Path(doc["files"]["yaml"]["path"]).is_file()


def test_bad_inputs_exit_2(trained, tmp_path):
    ckpt, _ = trained
    corrupt = tmp_path / "c.pt"
    corrupt.write_bytes(b"PK\x03\x04 broken zip")
    out = str(tmp_path / "o")
    cases = [
        ([str(ckpt), "--format", "onnx,tflite", "--out", out], "tflite"),
        ([str(ckpt), "--format", "engine", "--out", out], "engine"),  # no TensorRT / GPU on this machine
        ([str(ckpt), "--format", "onnx-int8", "--out", out], "--data"),
        ([str(corrupt), "--format", "onnx", "--out", out], "c.pt"),
        ([str(ckpt), "--format", "onnx", "--opset", "13", "--out", out], "--opset"),
        ([str(tmp_path), "--format", "yaml", "--out", out], "--trial"),
        ([str(ckpt), "--format", "onnx", "--nms", "--batch", "2", "--out", out], "--batch"),
    ]
    for args, needle in cases:
        result = CliRunner().invoke(app, ["export", *args])
        assert result.exit_code == 2, (args, result.output)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and needle in last, (args, result.stderr)
        assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("*.engine"))
