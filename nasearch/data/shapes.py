"""Drawing the synthetic dataset's object classes and working out which objects stay labelled.

Classes differ by outline and texture, never by colour alone. A shape is drawn as a mask (PIL polygon on a
local canvas) filled with its texture; drawing order is occlusion order (later shapes cover earlier ones).

Visible-fraction rule: an object keeps its box iff at least MIN_VISIBLE of its own pixels are still visible
after every later shape is drawn; its box is then the tight box of its *visible* pixels (as COCO boxes are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES: tuple[str, ...] = (
    "circle",
    "ring",
    "square",
    "triangle",
    "cross",
    "star",
    "striped_rectangle",
    "checkered_disk",
    "hexagon",
    "ellipse",
)
MIN_VISIBLE = 0.5
RING_HOLE = 0.55  # inner radius of a ring, relative to the outer
STAR_INNER = 0.42
CROSS_ARM = 1 / 3  # half-width of a cross arm, relative to the arm length

Color = tuple[int, int, int]


@dataclass(frozen=True)
class ShapeSpec:
    """One object: class, centre and longest side of its unoccluded box (px), shape aspect, rotation, look."""

    cls: int
    cx: float
    cy: float
    size: float
    angle: float = 0.0  # radians
    aspect: float = 1.0  # length/width of striped rectangles and ellipses (>= 1)
    color: Color = (220, 40, 40)
    color2: Color = (30, 30, 200)  # second colour of stripes and checks
    period: float = 6.0  # stripe / check period, px
    shade: float = 0.0  # strength of a linear shading across solid shapes (0..1)


@dataclass(frozen=True)
class Scene:
    """A rendered image and the labels that survive occlusion."""

    image: np.ndarray  # [H, W, 3] uint8
    boxes: np.ndarray  # [k, 4] float32 xyxy of kept objects, pixel edges
    classes: np.ndarray  # [k] int64
    visible: np.ndarray  # [n] visible fraction of every drawn shape
    kept: np.ndarray  # [n] bool, visible >= MIN_VISIBLE


@cache
def _unit_circle(n: int = 64) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _regular(n: int, start: float = -math.pi / 2) -> np.ndarray:
    t = start + np.arange(n) * 2 * math.pi / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star() -> np.ndarray:
    pts = _regular(10)
    pts[1::2] *= STAR_INNER
    return pts


def _cross() -> np.ndarray:
    a = CROSS_ARM
    return np.array(
        [[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]],
        dtype=np.float64,
    )


def unit_polygons(cls: int, aspect: float) -> tuple[np.ndarray, np.ndarray | None]:
    """(outline, hole or None) of a class, centred at 0, before rotation and scaling."""
    name = CLASS_NAMES[cls]
    if name in ("circle", "checkered_disk"):
        return _unit_circle(), None
    if name == "ring":
        return _unit_circle(), _unit_circle() * RING_HOLE
    if name == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64), None
    if name == "triangle":
        return _regular(3), None
    if name == "cross":
        return _cross(), None
    if name == "star":
        return _star(), None
    if name == "striped_rectangle":
        return np.array([[-aspect, -1], [aspect, -1], [aspect, 1], [-aspect, 1]], dtype=np.float64), None
    if name == "hexagon":
        return _regular(6, start=0.0), None
    if name == "ellipse":
        return _unit_circle() * np.array([aspect, 1.0]), None
    raise ValueError(f"unknown class index {cls}")


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def shape_polygons(spec: ShapeSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """Outline (and hole) in image pixels: rotated, scaled so the box's longest side is `size`, centred."""
    outline, hole = unit_polygons(spec.cls, spec.aspect)
    rot = _rotation(spec.angle)
    outline = outline @ rot.T
    lo, hi = outline.min(axis=0), outline.max(axis=0)
    scale = spec.size / float((hi - lo).max())
    shift = np.array([spec.cx, spec.cy]) - (lo + hi) / 2 * scale
    hole_px = (hole @ rot.T) * scale + shift if hole is not None else None
    return outline * scale + shift, hole_px


def shape_extent(cls: int, size: float, angle: float, aspect: float) -> tuple[float, float]:
    """(width, height) of a shape's unoccluded box."""
    outline, _ = shape_polygons(ShapeSpec(cls=cls, cx=0.0, cy=0.0, size=size, angle=angle, aspect=aspect))
    w, h = outline.max(axis=0) - outline.min(axis=0)
    return float(w), float(h)


def _local_mask(spec: ShapeSpec, width: int, height: int) -> tuple[int, int, np.ndarray] | None:
    """Rasterized mask of a shape clipped to the image: (x0, y0, bool mask [h, w]) or None if off-image."""
    outline, hole = shape_polygons(spec)
    x0 = max((math.floor(outline[:, 0].min())), 0)
    y0 = max((math.floor(outline[:, 1].min())), 0)
    x1 = min((math.ceil(outline[:, 0].max())) + 1, width)
    y1 = min((math.ceil(outline[:, 1].max())) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(canvas)
    # Pixel (i, j) covers [i, i+1); PIL fills the pixels whose centres fall inside, so shift by half a pixel.
    offset = np.array([x0 + 0.5, y0 + 0.5])
    draw.polygon([tuple(p) for p in (outline - offset).tolist()], fill=1)
    if hole is not None:
        draw.polygon([tuple(p) for p in (hole - offset).tolist()], fill=0)
    mask = np.asarray(canvas, dtype=bool)
    return (x0, y0, mask) if mask.any() else None


def _texture(spec: ShapeSpec, x0: int, y0: int, h: int, w: int) -> np.ndarray:
    """Fill colours [h, w, 3] float: solid with shading, stripes or checks in the shape's own frame."""
    ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    c, s = math.cos(spec.angle), math.sin(spec.angle)
    u = (xs + 0.5 - spec.cx) * c + (ys + 0.5 - spec.cy) * s
    v = -(xs + 0.5 - spec.cx) * s + (ys + 0.5 - spec.cy) * c
    color = np.array(spec.color, dtype=np.float32)
    name = CLASS_NAMES[spec.cls]
    if name in ("striped_rectangle", "checkered_disk"):
        p = max(spec.period, 2.0)
        if name == "striped_rectangle":
            second = (np.floor(u / (p / 2)) % 2).astype(bool)
        else:
            second = ((np.floor(u / (p / 2)) + np.floor(v / (p / 2))) % 2).astype(bool)
        return np.where(second[..., None], np.array(spec.color2, dtype=np.float32), color)
    ramp = (u / max(spec.size, 1.0)) * 2 * spec.shade * 40.0
    return color + ramp[..., None]


def render_scene(background: np.ndarray, shapes: list[ShapeSpec]) -> Scene:
    """Draw shapes in order over a copy of `background` and apply the visible-fraction rule."""
    height, width = background.shape[:2]
    image = background.astype(np.float32, copy=True)
    owner = np.full((height, width), -1, dtype=np.int32)
    placed: list[tuple[int, int, np.ndarray] | None] = []
    for k, spec in enumerate(shapes):
        local = _local_mask(spec, width, height)
        placed.append(local)
        if local is None:
            continue
        x0, y0, mask = local
        h, w = mask.shape
        region = image[y0 : y0 + h, x0 : x0 + w]
        region[mask] = _texture(spec, x0, y0, h, w)[mask]
        owner[y0 : y0 + h, x0 : x0 + w][mask] = k
    visible_px = np.bincount(owner.ravel() + 1, minlength=len(shapes) + 1)[1:]
    visible = np.zeros(len(shapes), dtype=np.float64)
    boxes, classes = [], []
    for k, (spec, local) in enumerate(zip(shapes, placed, strict=True)):
        if local is None:
            continue
        x0, y0, mask = local
        visible[k] = visible_px[k] / mask.sum()
        if visible[k] < MIN_VISIBLE:
            continue
        mine = owner[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] == k
        rows, cols = np.flatnonzero(mine.any(axis=1)), np.flatnonzero(mine.any(axis=0))
        boxes.append([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1])
        classes.append(spec.cls)
    return Scene(
        image=np.clip(image, 0, 255).astype(np.uint8),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        classes=np.asarray(classes, dtype=np.int64),
        visible=visible,
        kept=visible >= MIN_VISIBLE,
    )
