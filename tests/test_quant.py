"""PTQ to QDQ ONNX (the one INT8 spec, on CPUs with and without VNNI) and the hybrid search for float layers."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from nasearch.errors import InputError
from nasearch.onnxio.isa import ISA_ENV, detect_isa, exact_int8_session, int8_isa
from nasearch.onnxio.qdq import conv_node_names, quantize_qdq, quantized_nodes
from nasearch.onnxio.spec import int8_spec
from nasearch.quant.hybrid import search_float_layers


class Net(nn.Module):
    """Three convs; the middle one's input carries one channel with a huge range (an activation outlier)."""

    def __init__(self, outlier: float = 1.0) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.a.weight[0].mul_(outlier)
            self.a.bias[0] = outlier

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def _export(model: nn.Module, path) -> str:
    torch.onnx.export(
        model.eval(),
        (torch.rand(1, 3, 16, 16),),
        str(path),
        input_names=["images"],
        output_names=["out"],
        opset_version=17,
        dynamo=False,
    )
    return str(path)


def _calib(n: int = 6, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((1, 3, 16, 16), dtype=np.float32) for _ in range(n)]


def _run(path, x, options=None):
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]


def _weights(path) -> list[np.ndarray]:
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return [
        inits[n.input[0]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int8
    ]


@pytest.mark.parametrize("isa", ["vnni", "no-vnni"])
@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_ptq_writes_a_qdq_graph_close_to_float(tmp_path, monkeypatch, method, isa):
    monkeypatch.setenv(ISA_ENV, isa)  # the spec for a CPU with / without VNNI, whatever this one has
    torch.manual_seed(0)
    f = _export(Net(), tmp_path / "f.onnx")
    q = quantize_qdq(f, tmp_path / "q.onnx", _calib(), int8_spec("cpu", method))
    onnx.checker.check_model(onnx.load(str(q)))
    ops = [n.op_type for n in onnx.load(str(q)).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert all(quantized_nodes(q).values()) and len(quantized_nodes(q)) == 3
    x = _calib(1, seed=5)[0]
    ref, got = _run(f, x), _run(q, x)
    assert np.abs(ref - got).max() <= 0.05 * np.abs(ref).max() + 1e-3


def test_symmetric_signed_activations_for_tensorrt(tmp_path):
    torch.manual_seed(0)
    q = quantize_qdq(_export(Net(), tmp_path / "f.onnx"), tmp_path / "q.onnx", _calib(), int8_spec("tensorrt"))
    model = onnx.load(str(q))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(zp.dtype == np.int8 and not zp.any() for zp in zero_points)


@pytest.mark.parametrize(("isa", "qmax"), [("vnni", 127), ("no-vnni", 64)])
def test_cpu_spec_reduces_the_weight_range_only_without_vnni(tmp_path, isa, qmax):
    spec = int8_spec("cpu", isa=isa)
    assert (spec.activations, spec.weights, spec.reduce_range) == ("u8", "s8", isa == "no-vnni")
    assert ("w7" in spec.name) == (isa == "no-vnni") and spec.weight_qmax == qmax
    torch.manual_seed(0)
    q = quantize_qdq(_export(Net(), tmp_path / "f.onnx"), tmp_path / "q.onnx", _calib(), spec)
    peaks = [int(np.abs(w.astype(np.int32)).max()) for w in _weights(q)]
    assert len(peaks) == 3 and max(peaks) == qmax  # 2 * 255 * 64 < 2**15: no u8*s8 pair can saturate


def test_tensorrt_spec_keeps_full_range_weights_and_evaluates_exactly_without_vnni(tmp_path, monkeypatch):
    spec = int8_spec("tensorrt", isa="no-vnni")
    assert (spec.activations, spec.reduce_range, spec.weight_qmax) == ("s8", False, 127)
    monkeypatch.setenv(ISA_ENV, "no-vnni")
    torch.manual_seed(0)
    f = _export(Net(), tmp_path / "f.onnx")
    q = quantize_qdq(f, tmp_path / "q.onnx", _calib(), spec)
    x = _calib(1, seed=5)[0]
    ref, got = _run(f, x), _run(q, x, exact_int8_session(ort.SessionOptions()))
    assert np.abs(ref - got).max() <= 0.05 * np.abs(ref).max() + 1e-3


def test_isa_detection_and_override(monkeypatch):
    assert detect_isa("x86_64", frozenset({"avx2", "fma"})) == "no-vnni"
    assert detect_isa("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"})) == "vnni"
    assert detect_isa("x86_64", frozenset({"avx2", "avx_vnni"})) == "vnni"
    assert detect_isa("x86_64", None) == "no-vnni"  # unknown x86: the settings correct everywhere
    assert detect_isa("aarch64", None) == "vnni"  # no u8*s8 saturation off x86
    for forced in ("vnni", "no-vnni"):
        monkeypatch.setenv(ISA_ENV, forced)
        assert int8_isa() == forced and int8_spec("cpu").isa == forced
    monkeypatch.setenv(ISA_ENV, "avx9")
    with pytest.raises(InputError, match=ISA_ENV):
        int8_isa()


def test_excluded_layers_stay_float(tmp_path):
    torch.manual_seed(0)
    f = _export(Net(), tmp_path / "f.onnx")
    names = conv_node_names(f)
    q = quantize_qdq(f, tmp_path / "q.onnx", _calib(), exclude=[names[1]])
    state = quantized_nodes(q)
    assert state[names[1]] is False and state[names[0]] and state[names[2]]


def test_hybrid_finds_the_sensitive_layer(tmp_path):
    torch.manual_seed(0)
    f = _export(Net(outlier=300.0), tmp_path / "f.onnx")
    probe = _calib(4, seed=9)
    refs = [_run(f, x) for x in probe]

    def accuracy(path) -> float:  # 100 minus the relative error in percent: a stand-in for mAP
        errs = [
            np.abs(_run(path, x, exact_int8_session(ort.SessionOptions())) - r).mean() / np.abs(r).mean()
            for x, r in zip(probe, refs, strict=True)
        ]
        return 100.0 - 100.0 * float(np.mean(errs))

    # symmetric s8 activations (the TensorRT spec) spend half their levels on the outlier's sign: a clear miss
    result = search_float_layers(f, tmp_path / "h.onnx", _calib(), accuracy, max_drop=2.0, config=int8_spec("tensorrt"))
    assert result.float_accuracy - result.steps[0][1] > 2.0  # plain PTQ misses the budget
    assert result.drop <= 2.0
    # the conv that reads the outlier activations is the most sensitive, and alone is enough
    assert max(result.sensitivity, key=result.sensitivity.get) == "/b/Conv"
    assert result.float_layers == ["/b/Conv"]
    state = quantized_nodes(tmp_path / "h.onnx")
    assert all(not state[n] for n in result.float_layers)
