"""The one INT8 spec: what the latency backends measure and what `quantize` and `export` write.

A spec fixes the quantized op types, the activation and weight types, whether weights use a reduced
(7-bit) range, per-channel weights and the calibration method. `int8_spec(target)` chooses them the way
ONNX Runtime's quantization guide recommends:

- `cpu` (ONNX Runtime on x86): u8 asymmetric activations, s8 symmetric per-channel weights. On x86 CPUs
  without VNNI the u8·s8 kernels (VPMADDUBSW) add pairs of products into 16 bits and can saturate; the
  guide's remedy is `reduce_range` (7-bit weights: 2·255·64 < 2^15, so no pair can overflow), chosen
  there. With VNNI (or on other architectures) weights keep the full 8 bits.
- `tensorrt`: s8 symmetric activations and weights, full range: TensorRT's explicit quantization wants
  symmetric signed tensors and its GPU kernels accumulate in 32 bits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nasearch.onnxio.isa import int8_isa

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_TYPES = ("s8", "u8")
QUANTIZED_OPS = ("Conv", "ConvTranspose")
TARGETS = ("cpu", "tensorrt")


@dataclass(frozen=True)
class Int8Spec:
    """How a float ONNX graph becomes a QDQ INT8 graph (see the module docstring for the choices)."""

    target: str = "tensorrt"
    isa: str = "vnni"  # the CPU path the spec was chosen for (`nasearch.onnxio.isa`)
    activations: str = "s8"  # s8: symmetric; u8: asymmetric
    weights: str = "s8"  # always symmetric, per output channel when per_channel
    reduce_range: bool = False  # 7-bit weights, for x86 CPUs without VNNI
    per_channel: bool = True
    method: str = "minmax"
    percentile: float = 99.999
    op_types: tuple[str, ...] = QUANTIZED_OPS

    @property
    def name(self) -> str:
        """A short stable name, e.g. `qdq-cpu-u8s8w7-conv+convtranspose-minmax` (w7: reduced-range weights)."""
        ops = "+".join(o.lower() for o in self.op_types)
        bits = "w7" if self.reduce_range else ""
        channel = "" if self.per_channel else "-per-tensor"
        return f"qdq-{self.target}-{self.activations}{self.weights}{bits}-{ops}-{self.method}{channel}"

    @property
    def weight_qmax(self) -> int:
        """The largest |q| of a symmetric weight (ONNX Runtime: 127, or 64 with reduce_range)."""
        return 64 if self.reduce_range else 127

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["op_types"] = list(self.op_types)
        return {"name": self.name, **doc}

    def check(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method {self.method!r}: expected one of {CALIBRATION_METHODS}")
        if self.activations not in ACTIVATION_TYPES:
            raise ValueError(f"activation type {self.activations!r}: expected one of {ACTIVATION_TYPES}")
        if self.weights != "s8":
            raise ValueError(f"weight type {self.weights!r}: expected s8")


def int8_spec(
    target: str = "cpu", method: str = "minmax", op_types: tuple[str, ...] = QUANTIZED_OPS, isa: str | None = None
) -> Int8Spec:
    """The spec for `target` on this CPU (`isa` forces a path; default: `nasearch.onnxio.isa.int8_isa()`)."""
    if target not in TARGETS:
        raise ValueError(f"INT8 target {target!r}: expected one of {TARGETS}")
    isa = isa or int8_isa()
    if target == "tensorrt":
        return Int8Spec(target, isa, "s8", "s8", False, method=method, op_types=tuple(op_types))
    return Int8Spec(target, isa, "u8", "s8", reduce_range=isa == "no-vnni", method=method, op_types=tuple(op_types))
