"""Geometric and colour augmentation of images with their boxes (numpy + Pillow, Ultralytics-style).

Images are HWC uint8 RGB arrays; boxes are float32 xyxy pixels with pixel-edge coordinates (a box covering
pixel columns 3..5 is x1=3, x2=6); classes are int64. Every geometric step moves boxes with the same matrix
as the pixels, then clips them and drops what became too small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

PAD_VALUE = 114


class AugmentConfig(BaseModel):
    """Augmentation strengths (Ultralytics defaults). Gains are relative; probabilities in 0..1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hsv_h: Annotated[float, Field(ge=0.0, le=0.5)] = 0.015  # hue shift, fraction of the colour wheel
    hsv_s: Annotated[float, Field(ge=0.0, le=1.0)] = 0.7  # saturation gain
    hsv_v: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4  # value gain
    degrees: Annotated[float, Field(ge=0.0, le=180.0)] = 0.0
    translate: Annotated[float, Field(ge=0.0, le=0.9)] = 0.1
    scale: Annotated[float, Field(ge=0.0, le=0.95)] = 0.5  # zoom factor drawn from 1 ± scale
    shear: Annotated[float, Field(ge=0.0, le=45.0)] = 0.0
    fliplr: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    mosaic: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0  # probability of a mosaic while mosaic is on
    min_box_side: Annotated[float, Field(ge=0.0)] = 2.0  # px; smaller boxes are dropped
    min_area_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1  # kept area / transformed area


@dataclass(frozen=True)
class Labels:
    boxes: np.ndarray  # [n, 4] float32 xyxy
    classes: np.ndarray  # [n] int64

    def __len__(self) -> int:
        return len(self.classes)

    def keep(self, mask: np.ndarray) -> Labels:
        return Labels(self.boxes[mask], self.classes[mask])

    def scaled(self, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Labels:
        factor = np.array([sx, sy, sx, sy], dtype=np.float32)
        shift = np.array([dx, dy, dx, dy], dtype=np.float32)
        return Labels((self.boxes * factor + shift).astype(np.float32), self.classes)


@dataclass(frozen=True)
class LetterboxMeta:
    """How original image coordinates map to the letterboxed square: x' = x * scale_x + pad_x."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int


def resize_longest(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longest side is `size` (aspect kept)."""
    w, h = image.size
    r = size / max(w, h)
    new = (max(1, round(w * r)), max(1, round(h * r)))
    return image if new == (w, h) else image.resize(new, Image.Resampling.BILINEAR)


def pad_to_square(image: np.ndarray, size: int, value: int = PAD_VALUE) -> tuple[np.ndarray, int, int]:
    """Centre an image of side <= size on a size x size canvas; returns (canvas, pad_x, pad_y)."""
    h, w = image.shape[:2]
    pad_x, pad_y = (size - w) // 2, (size - h) // 2
    out = np.full((size, size, 3), value, dtype=np.uint8)
    out[pad_y : pad_y + h, pad_x : pad_x + w] = image
    return out, pad_x, pad_y


def letterbox(image: np.ndarray, size: int, value: int = PAD_VALUE) -> tuple[np.ndarray, LetterboxMeta]:
    """Resize keeping aspect (longest side = size) and pad to a square."""
    h, w = image.shape[:2]
    resized = np.asarray(resize_longest(Image.fromarray(image), size))
    out, pad_x, pad_y = pad_to_square(resized, size, value)
    return out, LetterboxMeta(resized.shape[1] / w, resized.shape[0] / h, pad_x, pad_y)


def letterbox_boxes(boxes: np.ndarray, meta: LetterboxMeta) -> np.ndarray:
    """Original-image boxes to letterboxed-image boxes."""
    factor = np.array([meta.scale_x, meta.scale_y, meta.scale_x, meta.scale_y], dtype=np.float32)
    shift = np.array([meta.pad_x, meta.pad_y, meta.pad_x, meta.pad_y], dtype=np.float32)
    return (np.asarray(boxes, dtype=np.float32) * factor + shift).astype(np.float32)


def unletterbox_boxes(boxes: np.ndarray, meta: LetterboxMeta, width: int, height: int) -> np.ndarray:
    """Letterboxed-image boxes (e.g. predictions) back to the original image, clipped to it."""
    factor = np.array([meta.scale_x, meta.scale_y, meta.scale_x, meta.scale_y], dtype=np.float32)
    shift = np.array([meta.pad_x, meta.pad_y, meta.pad_x, meta.pad_y], dtype=np.float32)
    out = (np.asarray(boxes, dtype=np.float32) - shift) / factor
    return np.clip(out, 0, np.array([width, height, width, height], dtype=np.float32)).astype(np.float32)


def clip_and_filter(
    labels: Labels, width: int, height: int, reference_area: np.ndarray, min_side: float, min_area_ratio: float
) -> Labels:
    """Clip boxes to the image; drop boxes thinner than min_side or keeping < min_area_ratio of their area."""
    if not len(labels):
        return labels
    b = labels.boxes.copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    keep = (w > min_side) & (h > min_side) & (w * h > min_area_ratio * reference_area)
    return Labels(b[keep].astype(np.float32), labels.classes[keep])


def mosaic4(tiles: list[tuple[np.ndarray, Labels]], size: int, rng: np.random.Generator) -> tuple[np.ndarray, Labels]:
    """Four images (longest side <= size) around a random centre of a 2size x 2size canvas.

    Tile 0 ends at the centre from the top-left, 1 from the top-right, 2 from the bottom-left, 3 from the
    bottom-right; boxes are clipped to the visible part of their own tile.
    """
    canvas = np.full((2 * size, 2 * size, 3), PAD_VALUE, dtype=np.uint8)
    xc, yc = (int(v) for v in rng.uniform(size / 2, 3 * size / 2, 2))
    boxes, classes = [], []
    for k, (img, labels) in enumerate(tiles):
        h, w = img.shape[:2]
        # Placement of the tile's top-left corner on the canvas (may be negative: then it is cropped).
        x0 = xc - w if k in (0, 2) else xc
        y0 = yc - h if k in (0, 1) else yc
        cx1, cy1 = max(x0, 0), max(y0, 0)
        cx2, cy2 = min(x0 + w, 2 * size), min(y0 + h, 2 * size)
        if cx2 <= cx1 or cy2 <= cy1:
            continue
        canvas[cy1:cy2, cx1:cx2] = img[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
        moved = labels.scaled(1.0, 1.0, x0, y0)
        b = moved.boxes.copy()
        b[:, [0, 2]] = b[:, [0, 2]].clip(cx1, cx2)
        b[:, [1, 3]] = b[:, [1, 3]].clip(cy1, cy2)
        ok = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        boxes.append(b[ok])
        classes.append(moved.classes[ok])
    return canvas, Labels(
        np.concatenate(boxes).astype(np.float32).reshape(-1, 4), np.concatenate(classes).astype(np.int64)
    )


def affine_matrix(
    in_size: tuple[int, int], out_size: int, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """(3x3 matrix from input to output pixels: centre, rotate+scale, shear, translate; the scale)."""
    w, h = in_size
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], dtype=np.float64)
    angle = math.radians(rng.uniform(-cfg.degrees, cfg.degrees))
    scale = rng.uniform(1 - cfg.scale, 1 + cfg.scale)
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    rotate = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)
    sx, sy = (math.tan(math.radians(v)) for v in rng.uniform(-cfg.shear, cfg.shear, 2))
    shear = np.array([[1, sx, 0], [sy, 1, 0], [0, 0, 1]], dtype=np.float64)
    tx, ty = rng.uniform(0.5 - cfg.translate, 0.5 + cfg.translate, 2) * out_size
    translate = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)
    return translate @ shear @ rotate @ centre, scale


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Boxes through an affine matrix: the axis-aligned box of the 4 transformed corners."""
    if not len(boxes):
        return boxes.astype(np.float32)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack([x1, y1]), np.stack([x2, y1]), np.stack([x2, y2]), np.stack([x1, y2])])
    pts = np.einsum("ij,kjn->kin", matrix[:2, :2], corners) + matrix[:2, 2][None, :, None]  # [4, 2, n]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return np.stack([lo[0], lo[1], hi[0], hi[1]], axis=1).astype(np.float32)


def random_affine(
    image: np.ndarray, labels: Labels, out_size: int, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, Labels]:
    """Warp to out_size x out_size (grey fill) with a random affine; boxes follow and are filtered."""
    h, w = image.shape[:2]
    matrix, scale = affine_matrix((w, h), out_size, cfg, rng)
    inverse = np.linalg.inv(matrix)
    warped = Image.fromarray(image).transform(
        (out_size, out_size),
        Image.Transform.AFFINE,
        data=tuple(inverse[:2].ravel().tolist()),
        resample=Image.Resampling.BILINEAR,
        fillcolor=(PAD_VALUE,) * 3,
    )
    boxes = transform_boxes(labels.boxes, matrix)
    before = labels.boxes
    reference = (before[:, 2] - before[:, 0]) * (before[:, 3] - before[:, 1]) * scale * scale
    out = clip_and_filter(
        Labels(boxes, labels.classes), out_size, out_size, reference, cfg.min_box_side, cfg.min_area_ratio
    )
    return np.asarray(warped), out


def hsv_jitter(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random hue shift and saturation/value gains through lookup tables (PIL's 0..255 HSV)."""
    dh = rng.uniform(-cfg.hsv_h, cfg.hsv_h)
    gs, gv = rng.uniform(-1, 1, 2) * np.array([cfg.hsv_s, cfg.hsv_v]) + 1
    if dh == 0 and gs == 1 and gv == 1:
        return image
    x = np.arange(256, dtype=np.float64)
    lut_h = ((x + dh * 256) % 256).astype(np.uint8)
    lut_s = np.clip(x * gs, 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gv, 0, 255).astype(np.uint8)
    h, s, v = Image.fromarray(image).convert("HSV").split()
    hsv = Image.merge("HSV", (h.point(lut_h.tolist()), s.point(lut_s.tolist()), v.point(lut_v.tolist())))
    return np.asarray(hsv.convert("RGB"))


def flip_horizontal(image: np.ndarray, labels: Labels) -> tuple[np.ndarray, Labels]:
    w = image.shape[1]
    b = labels.boxes.copy()
    b[:, [0, 2]] = w - labels.boxes[:, [2, 0]]
    return np.ascontiguousarray(image[:, ::-1]), Labels(b, labels.classes)
