"""QDQ INT8 copies of exported ONNX graphs, calibrated on the inputs a unit or network was traced with.

Latency does not depend on the calibration quality, only on where Q/DQ pairs sit, so two perturbed
copies of the traced inputs are enough. x86 CPUs run unsigned activations fastest (`u8`); TensorRT's
explicit quantization wants symmetric signed activations (`s8`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class _Reader:
    def __init__(self, feeds: dict[str, np.ndarray], batches: int = 2) -> None:
        rng = np.random.default_rng(0)
        self._items = iter(
            [
                {k: (v * (1 + 0.05 * rng.standard_normal(v.shape))).astype(v.dtype) for k, v in feeds.items()}
                for _ in range(batches)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)

    def rewind(self) -> None:  # the calibrator reads once
        pass


def quantize_qdq(float_onnx: Path, out: Path, feeds: dict[str, np.ndarray], activations: str = "u8") -> Path:
    """Write a QDQ INT8 copy of `float_onnx` (convolutions quantized, per-channel signed weights)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    act = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}[activations]
    quantize_static(
        str(float_onnx),
        str(out),
        _Reader(feeds),
        quant_format=QuantFormat.QDQ,
        activation_type=act,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["Conv"],
        extra_options={"ActivationSymmetric": activations == "s8", "WeightSymmetric": True},
    )
    return out
