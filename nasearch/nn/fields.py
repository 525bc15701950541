"""Parameter field types shared by the blocks' parameter models (bounds the DSL validator enforces; no torch)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

# The activations an architecture may name, each with its torch.nn class (`nasearch.nn.common` builds them).
ACTIVATION_CLASSES: dict[str, str] = {
    "relu": "ReLU",
    "silu": "SiLU",
    "leaky_relu": "LeakyReLU",
    "hardswish": "Hardswish",
    "gelu": "GELU",
    "identity": "Identity",
}

Act = Literal[tuple(ACTIVATION_CLASSES)]  # type: ignore[valid-type]
InnerBlock = Literal["qarepvgg", "repvgg", "conv"]
RepVariant = Literal["repvgg", "qarepvgg"]
# A C2f's inner block: YOLOv8's bottleneck, or YOLOv10's compact inverted block (CIB), whose middle depthwise
# conv may be the large-kernel RepVGG-style one (`cib_lk`).
C2fInner = Literal["bottleneck", "cib", "cib_lk"]
Channels = Annotated[int, Field(ge=4, le=4096)]
Depth = Annotated[int, Field(ge=1, le=16)]
Expansion = Annotated[float, Field(gt=0, le=1)]


def odd(k: int) -> int:
    """An even kernel with padding k // 2 changes the feature size, and the levels no longer line up."""
    if k % 2 == 0:
        raise ValueError("an odd kernel size (padding k // 2 must keep the feature size)")
    return k


OddKernel = Annotated[int, Field(ge=1, le=15), AfterValidator(odd)]
