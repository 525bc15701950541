"""QAT: the PyTorch fake quantization reproduces the QDQ graph; fine-tuning learns ranges that are exported."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nasearch.data import ensure_synthetic, load_split
from nasearch.nn.inspect import fused_copy, randomize_bn
from nasearch.onnxio.export import export_detector
from nasearch.onnxio.qdq import quantize_qdq, quantized_nodes
from nasearch.onnxio.spec import int8_spec
from nasearch.quant.qat import (
    ActFakeQuant,
    QuantConv,
    QuantRange,
    activation_ranges,
    fake_quant_weight,
    finetune,
    learnt_ranges,
    prepare_qat,
    strip_qat,
)
from nasearch.space import build_model, load_space

IMGSZ = 64


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def deploy(tiny_space_path, tmp_path_factory):
    """(fused tiny detector with non-trivial BN statistics, its float ONNX, calibration batches)."""
    torch.manual_seed(0)
    arch = load_space(tiny_space_path).sample(0).with_overrides(nc=10)
    fused = fused_copy(randomize_bn(build_model(arch)))
    path = export_detector(fused, tmp_path_factory.mktemp("qat") / "f.onnx", IMGSZ, fused=True)
    rng = np.random.default_rng(0)
    calib = [rng.random((1, 3, IMGSZ, IMGSZ), dtype=np.float32) for _ in range(4)]
    return fused, path, calib


def _reference_qdq(path, x: np.ndarray) -> list[np.ndarray]:
    """The QDQ graph as the ONNX spec defines it (no fused integer kernels)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"images": x})


@pytest.mark.parametrize(("target", "isa"), [("cpu", "vnni"), ("cpu", "no-vnni"), ("tensorrt", "vnni")])
def test_fake_quant_model_reproduces_the_qdq_graph(deploy, tmp_path, target, isa):
    fused, float_onnx, calib = deploy
    spec = int8_spec(target, isa=isa)
    qdq = quantize_qdq(float_onnx, tmp_path / "q.onnx", calib, spec)
    model, plan = prepare_qat(fused, float_onnx, qdq)
    assert {m.weight_qmax for m in model.modules() if isinstance(m, QuantConv)} == {spec.weight_qmax}
    assert len(plan.modules) == len(quantized_nodes(qdq)) == sum(isinstance(m, QuantConv) for m in model.modules())
    x = np.random.default_rng(7).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    with torch.no_grad():
        emulated = [t.numpy() for t in model.eval()(torch.from_numpy(x))]
        plain = [t.numpy() for t in fused.eval()(torch.from_numpy(x))]
    reference = _reference_qdq(qdq, x)
    for emu, flt, ref in zip(emulated, plain, reference, strict=True):
        # INT8 changes the outputs; the emulation changes them the same way, to within rare rounding ties
        assert np.abs(emu - ref).mean() < 0.2 * np.abs(flt - ref).mean()


def test_one_quantizer_per_tensor(deploy, tmp_path):
    fused, float_onnx, calib = deploy
    qdq = quantize_qdq(float_onnx, tmp_path / "q.onnx", calib)
    model, plan = prepare_qat(fused, float_onnx, qdq)
    # P3 feeds both the box and the class branch: one tensor, one Q/DQ pair, one shared quantizer
    box, cls = model.head.box[0][0].conv, model.head.cls[0][0].conv
    assert isinstance(box, QuantConv) and box.in_q is cls.in_q is not None
    ranges = activation_ranges(qdq)
    tensors = set(plan.inputs.values()) | set(plan.outputs.values())
    assert tensors <= set(ranges)
    quantizers = {id(q) for m in model.modules() if isinstance(m, QuantConv) for q in (m.in_q, m.out_q) if q}
    assert len(quantizers) == len(tensors)


def test_unchanged_ranges_export_the_same_graph(deploy, tmp_path):
    fused, float_onnx, calib = deploy
    spec = int8_spec("tensorrt")
    qdq = quantize_qdq(float_onnx, tmp_path / "q.onnx", calib, spec)
    model, _ = prepare_qat(fused, float_onnx, qdq)
    plain = strip_qat(model)
    again = export_detector(plain, tmp_path / "f2.onnx", IMGSZ, fused=True)
    out = quantize_qdq(again, tmp_path / "q2.onnx", calib, spec, ranges=learnt_ranges(model, plain, again))
    x = calib[0]
    for a, b in zip(_reference_qdq(qdq, x), _reference_qdq(out, x), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_activation_quantizer_learns_its_range():
    torch.manual_seed(0)
    q = ActFakeQuant(QuantRange(scale=1 / 255, zero_point=128, qmin=0, qmax=255))
    assert q.range() == pytest.approx((-128 / 255, 127 / 255))
    x = torch.randn(1000)  # far wider than the start range: widening it cuts the clipping error
    opt = torch.optim.SGD(q.parameters(), lr=1.0)
    errors = []
    for _ in range(40):
        err = (q(x) - x).pow(2).mean()
        opt.zero_grad()
        err.backward()
        opt.step()
        errors.append(float(err.detach()))
    lo, hi = q.range()
    assert errors[-1] < 0.5 * errors[0] and lo < -0.9 and hi > 0.9
    w = torch.randn(4, 3, 3, 3)
    wq = fake_quant_weight(w)
    steps = (w.abs().amax(dim=(1, 2, 3)) / 127).view(-1, 1, 1, 1)
    assert torch.allclose(wq / steps, (wq / steps).round(), atol=1e-4)  # on each channel's int8 grid
    assert (wq - w).abs().max() <= steps.max() / 2 + 1e-6


def test_finetune_moves_ranges_and_exports_them(deploy, tmp_path):
    fused, float_onnx, calib = deploy
    config = int8_spec("cpu")
    qdq = quantize_qdq(float_onnx, tmp_path / "q.onnx", calib, config)
    model, _ = prepare_qat(fused, float_onnx, qdq)
    before = {id(m): m.range() for m in model.modules() if isinstance(m, ActFakeQuant)}
    data = ensure_synthetic(tmp_path / "synth", images=12, imgsz=IMGSZ, seed=2)
    tuned = finetune(model, load_split(data, "train"), IMGSZ, epochs=1, batch=4, lr=0.01)
    after = [m.range() for m in tuned.modules() if isinstance(m, ActFakeQuant)]
    assert len(after) == len(before)
    assert any(a != b for a, b in zip(after, before.values(), strict=True))
    plain = strip_qat(tuned)
    path = export_detector(plain, tmp_path / "tuned.onnx", IMGSZ, fused=True)
    ranges = learnt_ranges(tuned, plain, path)
    out = quantize_qdq(path, tmp_path / "tuned.int8.onnx", calib, config, ranges=ranges)
    onnx.checker.check_model(str(out))
    assert all(quantized_nodes(out).values())
    exported = activation_ranges(out)
    for tensor, (lo, hi) in ranges.items():  # ONNX Runtime used the learnt ranges, not its calibration
        assert exported[tensor].scale == pytest.approx((hi - lo) / 255, rel=1e-5)
