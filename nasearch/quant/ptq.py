"""Post-training static quantization to a QDQ ONNX with ONNX Runtime.

The QDQ form (QuantizeLinear/DequantizeLinear pairs around each quantized op) is what TensorRT's
explicit-precision INT8 consumes, and ONNX Runtime runs it on the CPU. TensorRT wants symmetric,
signed activations (`activations="s8"`); x86 CPUs run unsigned activations faster (`"u8"`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_TYPES = ("s8", "u8")
QUANTIZED_OPS = ("Conv", "ConvTranspose")


@dataclass(frozen=True)
class PTQConfig:
    method: str = "minmax"
    activations: str = "s8"
    per_channel: bool = True
    percentile: float = 99.999
    op_types: tuple[str, ...] = QUANTIZED_OPS


class _Reader:
    """Feeds calibration batches to ONNX Runtime's calibrator, one dict per batch."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self.input_name = input_name
        self._iter = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    def rewind(self) -> None:  # not needed: the calibrator reads once
        pass


def conv_node_names(model_path: str | Path, op_types: Sequence[str] = QUANTIZED_OPS) -> list[str]:
    """Names of the nodes PTQ would quantize, in graph order (ONNX Runtime needs every node named)."""
    graph = onnx.load(str(model_path)).graph
    return [n.name for n in graph.node if n.op_type in op_types]


def prepare(float_onnx: str | Path, out: str | Path) -> Path:
    """Shape inference and graph clean-up ONNX Runtime recommends before quantization."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(float_onnx), str(out), skip_symbolic_shape=True)
    return Path(out)


def quantize_qdq(float_onnx: str | Path, out: str | Path, batches: Iterable[np.ndarray],
                 config: PTQConfig = PTQConfig(), exclude: Sequence[str] = ()) -> Path:
    """Write a QDQ INT8 model calibrated on `batches` ([B, 3, S, S] float32 in 0..1); `exclude` stay float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if config.method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method {config.method!r}: expected one of {CALIBRATION_METHODS}")
    if config.activations not in ACTIVATION_TYPES:
        raise ValueError(f"activation type {config.activations!r}: expected one of {ACTIVATION_TYPES}")
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[config.method]
    symmetric = config.activations == "s8"
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if config.method == "percentile":
        extra["CalibPercentile"] = config.percentile
    model = onnx.load(str(float_onnx))
    input_name = model.graph.input[0].name
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.onnx"
        quantize_static(
            str(float_onnx), str(staged), _Reader(input_name, batches),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(config.op_types),
            per_channel=config.per_channel,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            calibrate_method=method,
            extra_options=extra,
        )
        os.replace(staged, out)  # a failure never leaves a half-written model at `out`
    return out


def quantized_nodes(qdq_onnx: str | Path, op_types: Sequence[str] = QUANTIZED_OPS) -> dict[str, bool]:
    """For each conv of a QDQ model: whether its weight arrives through a DequantizeLinear (is INT8)."""
    graph = onnx.load(str(qdq_onnx)).graph
    producers = {o: n for n in graph.node for o in n.output}
    out = {}
    for node in graph.node:
        if node.op_type in op_types:
            weight = producers.get(node.input[1])
            out[node.name] = weight is not None and weight.op_type == "DequantizeLinear"
    return out
