"""Scaling an architecture down (or up) for CPU-sized experiments: widths, depths, classes, resolution.

The trust benchmark trains every architecture to convergence, which is only affordable on a CPU for
small models, so it applies this transform to architectures sampled from the main space:
- channel fields (`out`, `hidden`, `down`, `lateral`, `box_width`, `cls_width`) × `width`, to a multiple of 8,
  at least 8;
- `width_mult` (the YOLO-NAS head) × `width`;
- the head's fields by `head_width` instead when given (uniform scaling can leave a detector head of 8
  channels, a bottleneck no architecture of the full-size space has);
- `blocks` and `psa_blocks` × `depth`, rounded, at least 1;
- `nc` and `imgsz` replaced.
Rounding is monotone, so orderings the space's constraints require (e.g. non-decreasing stage widths,
hidden ≤ out) survive the transform; the result is validated like any architecture.
"""

from __future__ import annotations

import math
from typing import Any

from nasearch.space import Architecture

CHANNEL_FIELDS = frozenset({"out", "hidden", "down", "lateral", "box_width", "cls_width"})
DEPTH_FIELDS = frozenset({"blocks", "psa_blocks"})
MULT_FIELDS = frozenset({"width_mult"})
CHANNEL_DIVISOR = 8


def scale_channels(c: int, width: float) -> int:
    return max(CHANNEL_DIVISOR, math.floor(c * width / CHANNEL_DIVISOR + 0.5) * CHANNEL_DIVISOR)


def scale_depth(n: int, depth: float) -> int:
    return max(1, math.floor(n * depth + 0.5))


def _scale(node: Any, width: float, depth: float) -> Any:
    if isinstance(node, list):
        return [_scale(v, width, depth) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in CHANNEL_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            out[key] = scale_channels(value, width)
        elif key in DEPTH_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            out[key] = scale_depth(value, depth)
        elif key in MULT_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = round(float(value) * width, 6)
        else:
            out[key] = _scale(value, width, depth)
    return out


def scale_arch(
    arch: Architecture,
    width: float = 1.0,
    depth: float = 1.0,
    nc: int | None = None,
    imgsz: int | None = None,
    head_width: float | None = None,
) -> Architecture:
    """The architecture with widths × `width` (the head's × `head_width`, default `width`), depths × `depth`,
    and nc / imgsz replaced when given."""
    head_width = width if head_width is None else head_width
    if min(width, depth, head_width) <= 0:
        raise ValueError(f"multipliers must be positive, got width {width}, depth {depth}, head {head_width}")
    body = {k: v for k, v in arch.data.items() if k not in ("backbone", "neck", "head")}
    for part in ("backbone", "neck"):
        body[part] = _scale(arch.data[part], width, depth)
    body["head"] = _scale(arch.data["head"], head_width, depth)
    if nc is not None:
        body["nc"] = nc
    if imgsz is not None:
        body["imgsz"] = imgsz
    suffix = "" if (width, depth) == (1.0, 1.0) else f"-w{width:g}d{depth:g}"
    suffix += "" if head_width == width else f"h{head_width:g}"
    body["name"] = f"{arch.name}{suffix}"
    return Architecture.from_dict(body, arch.source)
