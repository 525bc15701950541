"""Post-training static quantization to a QDQ ONNX with ONNX Runtime: the project's one INT8 quantizer.

The QDQ form (QuantizeLinear/DequantizeLinear pairs around each quantized op) is what TensorRT's
explicit-precision INT8 consumes, and ONNX Runtime runs it on the CPU. What is quantized and how is an
`Int8Spec` (`nasearch.onnxio.spec`); the latency backends, `quantize` and `export` all come through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from nasearch import atomic
from nasearch.onnxio.spec import QUANTIZED_OPS, Int8Spec, int8_spec

Batch = np.ndarray | Mapping[str, np.ndarray]


class _Reader:
    """Feeds calibration batches to ONNX Runtime's calibrator, one dict per batch.

    A batch is an array for the graph's single input, or a dict of arrays by input name.
    """

    def __init__(self, input_name: str, batches: Iterable[Batch]) -> None:
        self.input_name = input_name
        self._iter = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        if batch is None:
            return None
        if isinstance(batch, Mapping):
            return {k: np.ascontiguousarray(v) for k, v in batch.items()}
        return {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    def rewind(self) -> None:  # not needed: the calibrator reads once
        pass


def perturbed_copies(feeds: Mapping[str, np.ndarray], copies: int = 2) -> list[dict[str, np.ndarray]]:
    """Calibration batches for timing only: seeded perturbations of the inputs a graph was traced with.

    Latency depends on where the Q/DQ pairs sit, not on calibration quality, so two copies are enough.
    """
    rng = np.random.default_rng(0)
    return [
        {k: (v * (1 + 0.05 * rng.standard_normal(v.shape))).astype(v.dtype) for k, v in feeds.items()}
        for _ in range(copies)
    ]


def conv_node_names(model_path: str | Path, op_types: Sequence[str] = QUANTIZED_OPS) -> list[str]:
    """Names of the nodes PTQ would quantize, in graph order (ONNX Runtime needs every node named)."""
    graph = onnx.load(str(model_path)).graph
    return [n.name for n in graph.node if n.op_type in op_types]


def prepare(float_onnx: str | Path, out: str | Path) -> Path:
    """Shape inference and graph clean-up ONNX Runtime recommends before quantization."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(float_onnx), str(out), skip_symbolic_shape=True)
    return Path(out)


def quantize_qdq(
    float_onnx: str | Path,
    out: str | Path,
    batches: Iterable[Batch],
    spec: Int8Spec | None = None,
    exclude: Sequence[str] = (),
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Path:
    """Write a QDQ INT8 model of `float_onnx` as `spec` says (default: `int8_spec("cpu")` for this CPU).

    `batches` calibrate it ([B, 3, S, S] float32 in 0..1, or dicts by input name); `exclude` names nodes
    that stay float; `ranges` (tensor → (rmin, rmax)) override calibration for those tensors (QAT).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    spec = spec or int8_spec("cpu")
    spec.check()
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[spec.method]
    types = {"s8": QuantType.QInt8, "u8": QuantType.QUInt8}
    extra: dict = {"ActivationSymmetric": spec.activations == "s8", "WeightSymmetric": True}
    if spec.method == "percentile":
        extra["CalibPercentile"] = spec.percentile
    if ranges:
        extra["TensorQuantOverrides"] = {
            t: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for t, (lo, hi) in ranges.items()
        }
    model = onnx.load(str(float_onnx))
    input_name = model.graph.input[0].name
    out = Path(out)
    with atomic.staged(out) as staged:  # beside `out`: a failure never leaves a half-written model there
        quantize_static(
            str(float_onnx),
            str(staged),
            _Reader(input_name, batches),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(spec.op_types),
            per_channel=spec.per_channel,
            reduce_range=spec.reduce_range,
            activation_type=types[spec.activations],
            weight_type=types[spec.weights],
            nodes_to_exclude=list(exclude),
            calibrate_method=method,
            extra_options=extra,
        )
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
