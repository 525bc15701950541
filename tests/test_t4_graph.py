"""The T4 roofline model: FLOPs agree with torch's counter; the model behaves physically; the stored fit
and leave-one-family-out errors are what the calibration file gives; hybrid INT8 is per layer."""

from __future__ import annotations

import json

import pytest

from nasearch.errors import InputError
from nasearch.latency.graph import trace_ops
from nasearch.latency.t4_model import (
    PLAUSIBLE,
    PRIOR,
    calibration_file,
    calibration_rows,
    error_summary,
    latency_ms,
    leave_one_family_out,
    load_figures,
    model_file,
    module_path,
    ops_of,
    plausibility_warnings,
    predict_figure,
    predict_t4,
    select_layers,
)
from nasearch.nn.inspect import count_flops, fused_copy
from nasearch.space import build_model, load_arch


@pytest.mark.parametrize("name", ["yolov8n", "yolov8s", "yolov10n"])
def test_traced_flops_match_the_flop_counter(name):
    arch = load_arch(name)
    traced = sum(op.flops for op in trace_ops(arch, 320))
    counted = count_flops(fused_copy(build_model(arch)), 320)
    assert traced == pytest.approx(counted, rel=1e-6)


def test_every_traced_convolution_is_named_by_its_module():
    ops = trace_ops(load_arch("yolov8n"), 320)
    convs = [op for op in ops if op.name == "aten.convolution"]
    assert convs and all(op.layer for op in convs)
    assert convs[0].layer == "stem.conv"


def test_yolov10_ops_are_traced_by_the_rules_of_the_other_blocks():
    """SCDown's strided depthwise conv, the CIBs' depthwise convs (the 7×7 one fused from two) and PSA's
    attention matmuls are traced as the convolutions and matmuls of YOLO11 are; every preset is predicted."""
    ops = trace_ops(load_arch("yolov10n"), 320)
    by_layer = {op.layer: op for op in ops if op.name == "aten.convolution"}
    scdown = by_layer["stages.2.0.cv2.conv"]
    assert scdown.groups == scdown.channels_out == 128 and scdown.out_shape == (1, 128, 20, 20)
    large = by_layer["neck.bu2.m.0.cv1.2.conv.conv"]
    assert large.groups == large.channels_out and large.weight_elems == large.channels_out * (49 + 1)
    assert "neck.bu2.m.0.cv1.2.conv1.conv" not in by_layer  # the 3×3 branch is folded into the 7×7
    assert [op.out_shape for op in ops if op.name == "aten.bmm"] == [(2, 100, 100), (2, 64, 100)]
    table = ops_of(load_arch("yolov10n"), 320, 1)
    grouped = [i for i, op in enumerate(ops) if op.groups > 1]
    assert grouped and all(table.flops[i] == 0.0 for i in grouped)  # depthwise: bound by bytes, as in YOLO11
    for size in "nsmblx":
        pred = predict_t4(load_arch(f"yolov10{size}"), "fp16", 640, 1)
        assert pred["predicted_ms"] > 0 and pred["measured"] is False


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


def test_onnx_node_names_map_to_module_paths():
    assert module_path("/stages.0/stages.0.1/cv1/conv/Conv") == "stages.0.1.cv1.conv"
    assert module_path("/head/cls.2/cls.2.2/Conv") == "head.cls.2.2"
    assert module_path("/stem/conv/Conv") == "stem.conv"
    assert module_path("stages.0.1.cv1.conv") == "stages.0.1.cv1.conv"


def test_every_exported_conv_node_is_a_traced_layer(tmp_path):
    """The names `nasearch quantize --mode hybrid` reports (ONNX Conv nodes) are the layers predicted."""
    from nasearch.onnxio.export import export_detector
    from nasearch.onnxio.qdq import conv_node_names

    arch = load_arch("yolov8n")
    onnx_path = export_detector(fused_copy(build_model(arch)).eval(), tmp_path / "m.onnx", 64, fused=True)
    names = conv_node_names(onnx_path, ["Conv"])
    assert sorted(module_path(n) for n in names) == sorted(ops_of(arch, 64, 1).conv_layers())


def test_hybrid_int8_is_predicted_per_layer():
    arch = load_arch("yolov8s")
    ops = ops_of(arch, 640, 1)
    convs = ops.conv_layers()
    head = select_layers(ops, ["head.*"])
    assert head and all(name.startswith("head.") for name in head) and len(head) < len(convs)
    int8 = latency_ms(ops, "int8", PRIOR)
    hybrid = latency_ms(ops, "int8", PRIOR, head)
    fp16 = latency_ms(ops, "fp16", PRIOR)
    assert int8 < hybrid < fp16
    # every convolution kept in FP16 is the FP16 engine: no reformat is left
    assert latency_ms(ops, "int8", PRIOR, frozenset(convs)) == pytest.approx(fp16, rel=1e-12)
    # alternating precisions pay a reformat at every switch
    alternate = frozenset(convs[::2])
    blocks = frozenset(convs[: len(convs) // 2])
    assert latency_ms(ops, "int8", PRIOR, alternate) > latency_ms(ops, "int8", PRIOR, blocks)


def test_hybrid_names_are_checked():
    arch = load_arch("yolov8n")
    ok = predict_t4(arch, "int8", 320, 1, ["/stem/conv/Conv"])
    assert ok["mode"] == "hybrid" and ok["float_layers"] == 1
    with pytest.raises(InputError, match="no_such"):
        predict_t4(arch, "int8", 320, 1, ["no_such_layer"])
    with pytest.raises(InputError, match="only with --precision int8"):
        predict_t4(arch, "fp16", 320, 1, ["stem.conv"])


def test_plausibility_warnings_flag_bounds_and_implausible_values():
    good = {**PRIOR}
    assert plausibility_warnings(good) == []
    high = plausibility_warnings({**PRIOR, "eff_fp16": 0.9})
    assert len(high) == 1 and "eff_fp16" in high[0] and "plausible" in high[0]
    pinned = plausibility_warnings({**PRIOR, "pointwise_share": 0.0, "gen_trt7.2": 2.49})
    assert len(pinned) == 2 and all("pinned" in w for w in pinned)
    assert PLAUSIBLE["eff_fp16"][1] <= 0.8


def test_calibration_file_states_source_and_version_of_every_figure():
    figures = load_figures(calibration_file())
    assert len(figures) >= 14
    assert all(f.source and "<http" in f.source for f in figures)
    held_out = {"yolov8", "yolov10"}
    assert not any(f.family in held_out or f.model.startswith(("yolov8", "yolov10")) for f in figures)


def test_a_malformed_calibration_row_names_its_line(tmp_path):
    bad = tmp_path / "cal.csv"
    text = calibration_file().read_text().splitlines()
    bad.write_text("\n".join([text[0], text[1].replace(",fp16,", ",fp12,")]) + "\n")
    with pytest.raises(InputError) as err:
        load_figures(bad)
    assert "line 2.precision" in err.value.line()


@pytest.fixture(scope="module")
def stored_and_rows():
    doc = json.loads(model_file().read_text())
    rows, unavailable = calibration_rows(load_figures(calibration_file()))
    assert unavailable == doc["unavailable_presets"]
    return doc, rows


@pytest.mark.slow
def test_the_stored_fit_is_what_its_parameters_give(stored_and_rows):
    doc, rows = stored_and_rows
    params = doc["params"]
    points = {(p["model"], p["precision"], p["batch"], p["generation"]): p for p in doc["fit"]}
    assert len(points) == len(rows)
    for fig, ops in rows:
        stored = points[(fig.model, fig.precision, fig.batch, fig.generation)]
        assert predict_figure(fig, ops, params) == pytest.approx(stored["predicted_ms"], abs=2e-4)
    assert error_summary(doc["fit"]) == doc["fit_errors"]


@pytest.mark.slow
def test_leave_one_family_out_errors_recomputed_from_the_calibration(stored_and_rows):
    doc, rows = stored_and_rows
    recomputed = error_summary(leave_one_family_out(rows))
    stored = doc["leave_one_family_out_errors"]
    assert recomputed.keys() == stored.keys()
    for key, value in recomputed.items():
        assert value["n"] == stored[key]["n"]
        assert value["mean_abs_pct"] == pytest.approx(stored[key]["mean_abs_pct"], abs=0.2)
        assert value["worst_abs_pct"] == pytest.approx(stored[key]["worst_abs_pct"], abs=0.5)
    # the targets of issue 16 on the figures of the generation the model predicts (TensorRT 10)
    assert recomputed["fp16/trt10"]["n"] >= 14
    assert recomputed["fp16/trt10"]["mean_abs_pct"] <= 12.0
    assert recomputed["fp16/trt10"]["worst_abs_pct"] <= 25.0


def test_fitted_model_preserves_the_published_order():
    for names, precision in (
        (["yolov6n", "yolov6s", "yolov6m", "yolov6l"], "fp16"),
        (["yolo11n", "yolo11s", "yolo11m", "yolo11l", "yolo11x"], "fp16"),
        (["yolov5nu", "yolov5su", "yolov5mu", "yolov5lu", "yolov5xu"], "fp16"),
        (["yolo_nas_s", "yolo_nas_m", "yolo_nas_l"], "fp16"),
        (["yolo_nas_s", "yolo_nas_m", "yolo_nas_l"], "int8"),
    ):
        preds = [predict_t4(load_arch(n), precision, 640, 1)["predicted_ms"] for n in names]
        assert preds == sorted(preds)
    for name in ("yolo_nas_s", "yolo_nas_l"):
        fp16 = predict_t4(load_arch(name), "fp16", 640, 1)["predicted_ms"]
        assert predict_t4(load_arch(name), "int8", 640, 1)["predicted_ms"] < fp16


def test_the_stored_model_records_builder_flags_and_warnings():
    from nasearch.latency.tensorrt_backend import builder_flag_names

    doc = json.loads(model_file().read_text())
    assert doc["builder_flags"] == {p: list(builder_flag_names(p)) for p in ("fp16", "int8", "fp32")}
    assert doc["warnings"] == plausibility_warnings(doc["params"])
    assert doc["predicts"].startswith("trt10")
