"""Augmentation keeps boxes on the drawn objects; letterbox and its inverse round-trip coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from nasearch.data.augment import (
    AugmentConfig,
    Labels,
    flip_horizontal,
    hsv_jitter,
    letterbox,
    letterbox_boxes,
    mosaic4,
    random_affine,
    unletterbox_boxes,
)

COLORS = [(250, 20, 20), (20, 250, 20), (20, 20, 250), (250, 250, 20)]


def _canvas(h: int, w: int, rects: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, Labels]:
    """A black image with filled rectangles (pixel-edge xyxy) in COLORS[k]; class k."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(rects):
        img[y1:y2, x1:x2] = COLORS[k]
    boxes = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
    return img, Labels(boxes, np.arange(len(rects), dtype=np.int64))


def _pixel_box(img: np.ndarray, color: tuple[int, int, int], tol: int = 60) -> np.ndarray | None:
    """Tight pixel-edge box of the pixels close to a colour."""
    mask = np.abs(img.astype(int) - np.array(color)).max(axis=2) < tol
    if not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def _assert_boxes_on_objects(img: np.ndarray, labels: Labels, atol: float, rotated: bool = False) -> int:
    """Every kept box covers the drawn pixels of its colour, tightly -- except a rotated rectangle cut by
    the image edge, which keeps the clipped box of its corners; returns the count."""
    h, w = img.shape[:2]
    for box, cls in zip(labels.boxes, labels.classes, strict=True):
        drawn = _pixel_box(img, COLORS[cls])
        assert drawn is not None, f"box {box} of class {cls} has no pixels"
        assert (box[:2] <= drawn[:2] + atol).all() and (box[2:] >= drawn[2:] - atol).all(), (box, drawn)
        touches_edge = box[0] <= 0.5 or box[1] <= 0.5 or box[2] >= w - 0.5 or box[3] >= h - 0.5
        if not (rotated and touches_edge):
            np.testing.assert_allclose(box, drawn, atol=atol, err_msg=f"class {cls}")
    return len(labels)


def test_letterbox_places_pixels_where_the_boxes_go():
    img, labels = _canvas(120, 200, [(20, 30, 90, 100), (150, 10, 190, 50)])
    out, meta = letterbox(img, 96)
    assert out.shape == (96, 96, 3) and (meta.pad_x, meta.pad_y) == (0, 19)
    assert (out[: meta.pad_y] == 114).all() and (out[-meta.pad_y :] == 114).all()
    boxes = letterbox_boxes(labels.boxes, meta)
    _assert_boxes_on_objects(out, Labels(boxes, labels.classes), atol=1.0)


@pytest.mark.parametrize("shape", [(120, 200), (200, 90), (64, 64)])
def test_letterbox_round_trip(shape):
    h, w = shape
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (50, 4)) * np.array([w, h, w, h])
    boxes = np.concatenate([np.minimum(xy[:, :2], xy[:, 2:]), np.maximum(xy[:, :2], xy[:, 2:])], axis=1)
    _, meta = letterbox(np.zeros((h, w, 3), dtype=np.uint8), 160)
    back = unletterbox_boxes(letterbox_boxes(boxes, meta), meta, w, h)
    np.testing.assert_allclose(back, boxes, atol=1e-3)
    inside = letterbox_boxes(boxes, meta)
    assert inside.min() >= 0 and inside.max() <= 160


@pytest.mark.parametrize("degrees", [0.0, 25.0])
def test_random_affine_moves_boxes_with_pixels(degrees):
    cfg = AugmentConfig(degrees=degrees, translate=0.2, scale=0.5, min_box_side=4)
    checked = 0
    for seed in range(12):
        img, labels = _canvas(128, 128, [(10, 20, 50, 70), (70, 60, 120, 100), (30, 90, 60, 120)])
        out, moved = random_affine(img, labels, 128, cfg, np.random.default_rng(seed))
        assert out.shape == (128, 128, 3)
        # Rotated rectangles: their box is the bounds of the rotated corners = bounds of the drawn pixels.
        checked += _assert_boxes_on_objects(out, moved, atol=1.25, rotated=degrees > 0)
    assert checked >= 20


def test_random_affine_drops_what_leaves_the_image():
    cfg = AugmentConfig(translate=0.0, scale=0.0)
    img, labels = _canvas(128, 128, [(0, 0, 8, 8), (50, 50, 80, 80)])
    matrix_shift = AugmentConfig(translate=0.9, scale=0.0)
    kept_all = random_affine(img, labels, 128, cfg, np.random.default_rng(0))[1]
    assert len(kept_all) == 2  # identity-like warp keeps both
    dropped = 0
    for seed in range(20):
        out, moved = random_affine(img, labels, 128, matrix_shift, np.random.default_rng(seed))
        dropped += 2 - len(moved)
        _assert_boxes_on_objects(out, moved, atol=1.25)
        assert ((moved.boxes >= 0) & (moved.boxes <= 128)).all()
    assert dropped > 0


def test_mosaic_then_affine_keeps_boxes_on_their_tiles():
    cfg = AugmentConfig(translate=0.1, scale=0.3)
    checked = 0
    for seed in range(10):
        tiles = []
        for k in range(4):
            img = np.zeros((96, 64 + 8 * k, 3), dtype=np.uint8)  # different sizes
            img[20:60, 10:40] = COLORS[k]
            tiles.append((img, Labels(np.array([[10, 20, 40, 60]], dtype=np.float32), np.array([k]))))
        rng = np.random.default_rng(seed)
        canvas, labels = mosaic4(tiles, 96, rng)
        assert canvas.shape == (192, 192, 3)
        _assert_boxes_on_objects(canvas, labels, atol=0.0)  # pasting is exact
        out, moved = random_affine(canvas, labels, 96, cfg, rng)
        checked += _assert_boxes_on_objects(out, moved, atol=1.25)
    assert checked >= 15


def test_flip_mirrors_boxes():
    img, labels = _canvas(64, 100, [(5, 10, 30, 40), (60, 0, 100, 20)])
    out, flipped = flip_horizontal(img, labels)
    np.testing.assert_array_equal(flipped.boxes, [[70, 10, 95, 40], [0, 0, 40, 20]])
    _assert_boxes_on_objects(out, flipped, atol=0.0)


def test_hsv_jitter_changes_colour_not_geometry():
    img, _ = _canvas(64, 64, [(10, 10, 40, 40)])
    img[50:60, 50:60] = 128  # grey stays grey under a hue shift
    assert hsv_jitter(img, AugmentConfig(hsv_h=0, hsv_s=0, hsv_v=0), np.random.default_rng(0)) is img
    out = hsv_jitter(img, AugmentConfig(hsv_h=0.3, hsv_s=0.0, hsv_v=0.0), np.random.default_rng(1))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out[20, 20], img[20, 20])  # the red square changed hue
    assert (out[:10] == 0).all()  # black background stays black
    grey = out[55, 55].astype(int)
    assert grey.max() - grey.min() <= 2
    changed = np.abs(out.astype(int) - img.astype(int)).max(axis=2) > 0
    assert changed[10:40, 10:40].all() and changed.sum() == 30 * 30  # only the square's pixels changed


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        AugmentConfig(fliplr=1.5)
    with pytest.raises(ValueError):
        AugmentConfig(scale_typo=0.3)
