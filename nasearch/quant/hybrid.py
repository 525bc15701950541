"""Hybrid INT8: keep the fewest layers in float that bring the accuracy drop within a budget.

Sensitivity of a layer = the accuracy regained when only that layer is left in float. Layers are
then returned to float greedily, most sensitive first, until the drop is within `max_drop`.

The layers are chosen on a selection split disjoint from the images the result is reported on
(`selection_split`): a drop measured on the images that chose the layers would flatter the choice.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasearch.data.records import DetectionSplit
from nasearch.onnxio.qdq import conv_node_names, quantize_qdq
from nasearch.onnxio.spec import Int8Spec, int8_spec

SELECTION_RULE = "val images in image-id order: even positions select the float layers, odd positions report"

Evaluate = Callable[[Path], float]  # ONNX file → accuracy (mAP, percent points)


@dataclass
class HybridResult:
    float_accuracy: float
    int8_accuracy: float
    float_layers: list[str]
    sensitivity: dict[str, float] = field(default_factory=dict)
    steps: list[tuple[int, float]] = field(default_factory=list)  # (float layers, accuracy) as tried

    @property
    def drop(self) -> float:
        return self.float_accuracy - self.int8_accuracy


def selection_split(split: DetectionSplit) -> tuple[DetectionSplit, DetectionSplit]:
    """(selection, report): alternate images of `split` in image-id order — disjoint, deterministic, and
    both halves drawn across the whole split (tiles of one scene, files of one source) alike."""
    order = sorted(range(len(split)), key=lambda i: split.records[i].image_id)
    return split.subset(order[0::2]), split.subset(order[1::2])


def layer_sensitivity(
    float_onnx: Path,
    calib: Sequence[np.ndarray],
    evaluate: Evaluate,
    config: Int8Spec,
    candidates: Sequence[str] | None = None,
    workdir: Path | None = None,
) -> dict[str, float]:
    """Accuracy of the all-INT8 model with each candidate layer alone kept in float."""
    names = list(candidates) if candidates is not None else conv_node_names(float_onnx, config.op_types)
    out = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for name in names:
            path = quantize_qdq(float_onnx, Path(tmp) / "probe.onnx", list(calib), config, exclude=[name])
            out[name] = evaluate(path)
    return out


def search_float_layers(
    float_onnx: Path,
    out: Path,
    calib: Sequence[np.ndarray],
    evaluate: Evaluate,
    max_drop: float,
    config: Int8Spec | None = None,
    max_float: int | None = None,
    candidates: Sequence[str] | None = None,
) -> HybridResult:
    """Write to `out` the QDQ model with the fewest float layers whose drop is ≤ max_drop (if reachable)."""
    config = config or int8_spec("cpu")
    float_acc = evaluate(float_onnx)
    quantize_qdq(float_onnx, out, list(calib), config)
    int8_acc = evaluate(out)
    result = HybridResult(float_acc, int8_acc, [], steps=[(0, int8_acc)])
    if float_acc - int8_acc <= max_drop:
        return result
    sens = layer_sensitivity(float_onnx, calib, evaluate, config, candidates)
    result.sensitivity = {k: round(v - int8_acc, 4) for k, v in sens.items()}
    order = sorted(sens, key=lambda k: sens[k], reverse=True)
    limit = min(len(order), max_float if max_float is not None else len(order))
    best_acc, best_layers = int8_acc, []
    for n in range(1, limit + 1):
        layers = order[:n]
        quantize_qdq(float_onnx, out, list(calib), config, exclude=layers)
        acc = evaluate(out)
        result.steps.append((n, acc))
        if acc > best_acc:
            best_acc, best_layers = acc, layers
        if float_acc - acc <= max_drop:
            best_acc, best_layers = acc, layers
            break
    quantize_qdq(float_onnx, out, list(calib), config, exclude=best_layers)
    result.int8_accuracy, result.float_layers = best_acc, list(best_layers)
    return result
