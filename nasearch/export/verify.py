"""Verification of exported ONNX files: each is run under ONNX Runtime against its PyTorch counterpart on the
same input, and the differences are reported with the tolerance they are held to (`export.json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from nasearch.onnxio.isa import exact_int8_session
from nasearch.onnxio.qdq import quantized_nodes
from nasearch.quant.qat import prepare_qat

BOX_ATOL_PX = 0.01  # float ONNX vs PyTorch: box corners
SCORE_ATOL = 1e-4  # float ONNX vs PyTorch: class scores
INT8_SCORE_MEAN_ATOL = 0.01  # INT8 ONNX vs PyTorch fake-quantized emulation: mean |Δscore|
INT8_BOX_MEAN_ATOL_FRACTION = 0.01  # ... mean |Δbox| as a fraction of the image size
NMS_SCORE_ATOL = 1e-4  # NMS graph vs PyTorch: the detections' scores, sorted


def _ort_run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), exact_int8_session(options), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def verify_float(path: Path, model: nn.Module, x: np.ndarray) -> dict[str, Any]:
    """ONNX checker, then ONNX Runtime against the (unfused) PyTorch model on `x`."""
    onnx.checker.check_model(str(path))
    with torch.no_grad():
        boxes, scores = model.eval()(torch.from_numpy(x))
    got_boxes, got_scores = _ort_run(path, x)[:2]
    box_diff = float(np.abs(got_boxes - boxes.numpy()).max())
    score_diff = float(np.abs(got_scores - scores.numpy()).max())
    return {
        "checker": True,
        "max_abs_diff_boxes_px": box_diff,
        "max_abs_diff_scores": score_diff,
        "tolerance": {"boxes_px": BOX_ATOL_PX, "scores": SCORE_ATOL},
        "ok": box_diff <= BOX_ATOL_PX and score_diff <= SCORE_ATOL,
    }


def _match_detections(ref: np.ndarray, got: np.ndarray) -> float:
    """Share of reference detections with a counterpart (same image and class, IoU > 0.99, |Δscore| < 1e-3)."""
    if len(ref) == 0:
        return 1.0 if len(got) == 0 else 0.0
    from torchvision.ops import box_iou

    iou = box_iou(torch.from_numpy(ref[:, 1:5]), torch.from_numpy(got[:, 1:5])).numpy() if len(got) else None
    found = 0
    for i, row in enumerate(ref):
        if iou is None:
            break
        same = (got[:, 0] == row[0]) & (got[:, 6] == row[6]) & (np.abs(got[:, 5] - row[5]) < 1e-3)
        found += bool((same & (iou[i] > 0.99)).any())
    return found / len(ref)


def verify_nms(path: Path, wrapped: nn.Module, x: np.ndarray) -> dict[str, Any]:
    """The NMS graph against PyTorch: same number of detections and the same scores in order.

    Which box wins among boxes of *equal* score is up to each implementation (untrained models are full of
    such ties), so box identity is reported (`matched_fraction`) rather than required.
    """
    onnx.checker.check_model(str(path))
    with torch.no_grad():
        ref = wrapped.eval()(torch.from_numpy(x)).numpy()
    got = _ort_run(path, x)[0]
    share = _match_detections(ref, got)
    same_count = len(ref) == len(got)
    score_diff = float(np.abs(np.sort(ref[:, 5]) - np.sort(got[:, 5])).max()) if same_count and len(ref) else 0.0
    return {
        "checker": True,
        "detections_torch": len(ref),
        "detections_onnx": len(got),
        "max_abs_diff_sorted_scores": score_diff,
        "matched_fraction": round(share, 4),
        "tolerance": {"detections": "equal count", "sorted_scores": NMS_SCORE_ATOL},
        "ok": same_count and score_diff <= NMS_SCORE_ATOL,
    }


def verify_int8(qdq: Path, float_onnx: Path, fused: nn.Module, x: np.ndarray, imgsz: int) -> dict[str, Any]:
    """The QDQ graph against its PyTorch fake-quantized emulation (same scales, zero points and weights)."""
    onnx.checker.check_model(str(qdq))
    emulation, plan = prepare_qat(fused, float_onnx, qdq)
    with torch.no_grad():
        boxes, scores = emulation.eval()(torch.from_numpy(x))
        ref_boxes, ref_scores = fused.eval()(torch.from_numpy(x))
    got_boxes, got_scores = _ort_run(qdq, x)[:2]
    box_mean = float(np.abs(got_boxes - boxes.numpy()).mean())
    score_mean = float(np.abs(got_scores - scores.numpy()).mean())
    states = quantized_nodes(qdq)
    return {
        "checker": True,
        "quantized_convs": sum(states.values()),
        "float_convs": len(states) - sum(states.values()),
        "emulated_convs": len(plan.modules),
        "mean_abs_diff_boxes_px": box_mean,
        "mean_abs_diff_scores": score_mean,
        "max_abs_diff_scores": float(np.abs(got_scores - scores.numpy()).max()),
        "vs_float_mean_abs_diff_scores": float(np.abs(got_scores - ref_scores.numpy()).mean()),
        "vs_float_mean_abs_diff_boxes_px": float(np.abs(got_boxes - ref_boxes.numpy()).mean()),
        "tolerance": {
            "mean_abs_diff_scores": INT8_SCORE_MEAN_ATOL,
            "mean_abs_diff_boxes_px": INT8_BOX_MEAN_ATOL_FRACTION * imgsz,
        },
        "ok": score_mean <= INT8_SCORE_MEAN_ATOL and box_mean <= INT8_BOX_MEAN_ATOL_FRACTION * imgsz,
    }
