"""The op graph behind the T4 roofline model: FLOPs agree with torch's counter; the model behaves physically."""

from __future__ import annotations

import pytest

from nasearch.latency.graph import trace_ops
from nasearch.latency.t4_model import PRIOR, latency_ms, ops_of
from nasearch.nn.inspect import count_flops, fused_copy
from nasearch.space import build_model, load_arch


@pytest.mark.parametrize("name", ["yolov8n", "yolov8s"])
def test_traced_flops_match_the_flop_counter(name):
    arch = load_arch(name)
    traced = sum(op.flops for op in trace_ops(arch, 320))
    counted = count_flops(fused_copy(build_model(arch)), 320)
    assert traced == pytest.approx(counted, rel=1e-6)


def test_batch_scales_work_but_not_overheads():
    arch = load_arch("yolov8n")
    one = latency_ms(ops_of(arch, 640, 1), "fp16", PRIOR)
    many = latency_ms(ops_of(arch, 640, 32), "fp16", PRIOR)
    assert one < many < 32 * one  # batching amortises launches and fills the SMs


def test_bigger_models_and_inputs_are_slower_int8_faster():
    small, large = load_arch("yolov8n"), load_arch("yolov8m")
    assert latency_ms(ops_of(small, 640, 1), "fp16", PRIOR) < latency_ms(ops_of(large, 640, 1), "fp16", PRIOR)
    assert latency_ms(ops_of(small, 320, 1), "fp16", PRIOR) < latency_ms(ops_of(small, 640, 1), "fp16", PRIOR)
    fp16 = latency_ms(ops_of(large, 640, 1), "fp16", PRIOR)
    int8 = latency_ms(ops_of(large, 640, 1), "int8", {**PRIOR, "eff_int8": PRIOR["eff_fp16"]})
    assert int8 < fp16


def test_fitted_model_reproduces_its_calibration_points():
    from nasearch.latency.t4_model import CALIBRATION, predict_t4

    errors = []
    for name, precision, batch, published, _ in CALIBRATION:
        doc = predict_t4(load_arch(name), precision, 640, batch)
        assert doc["measured"] is False and doc["method"] == "roofline"
        errors.append(doc["per_image_ms"] / published - 1)
    assert max(abs(e) for e in errors) <= 0.20
    assert sum(abs(e) for e in errors) / len(errors) <= 0.10


def test_fitted_model_preserves_the_published_order():
    from nasearch.latency.t4_model import predict_t4

    for names, precision in ((["yolov6n", "yolov6s", "yolov6m", "yolov6l"], "fp16"),
                             (["yolo_nas_s", "yolo_nas_m", "yolo_nas_l"], "fp16"),
                             (["yolo_nas_s", "yolo_nas_m", "yolo_nas_l"], "int8")):
        preds = [predict_t4(load_arch(n), precision, 640, 1)["predicted_ms"] for n in names]
        assert preds == sorted(preds)
    for name in ("yolo_nas_s", "yolo_nas_l"):
        fp16 = predict_t4(load_arch(name), "fp16", 640, 1)["predicted_ms"]
        assert predict_t4(load_arch(name), "int8", 640, 1)["predicted_ms"] < fp16
