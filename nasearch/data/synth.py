"""The synthetic detection dataset (`nasearch data synth`): COCO json + YOLO labels + data.yaml.

Every image has its own random stream (seed, image index), so the same seed gives identical bytes. Objects are
the classes of `nasearch.data.shapes` in random colours, their box's longest side log-uniform between
MIN_OBJECT_PX and MAX_OBJECT_FRACTION of the image (so stride 8, 16 and 32 all matter), drawn over noisy,
textured backgrounds with clutter (irregular blobs, lines, arcs that are not objects); later objects may
occlude earlier ones (see `shapes.MIN_VISIBLE` for which boxes are kept).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nasearch import yamlio
from nasearch.data.coco import write_json_atomic
from nasearch.data.outdir import require_replaceable, sibling_temp, write_directory_atomically
from nasearch.data.shapes import CLASS_NAMES, MIN_VISIBLE, Scene, ShapeSpec, render_scene, shape_extent
from nasearch.errors import OPTION, InputError

FORMAT_VERSION = 1
MARKER = "synth.json"  # written last; its presence means the directory is complete
MIN_OBJECT_PX = 8
MAX_OBJECT_FRACTION = 0.6
VAL_FRACTION = 0.15
OBJECTS_PER_IMAGE = (2, 10)
CLUTTER_PER_IMAGE = (3, 12)
PLACEMENT_TRIES = 8
MIN_CONTRAST = 90.0  # L2 RGB distance between an object's colour and the background under it
MIN_TEXTURE_CONTRAST = 140.0  # between the two colours of stripes and checks
JPEG_QUALITY = 92
ELONGATED = {"striped_rectangle": (1.4, 2.6), "ellipse": (1.8, 3.0)}


@dataclass(frozen=True)
class SynthSummary:
    """What `data synth` reports."""

    out: str
    images: int
    train_images: int
    val_images: int
    imgsz: int
    seed: int
    classes: int
    boxes: int
    boxes_per_class: list[int]
    box_side_min_px: float
    box_side_median_px: float
    box_side_max_px: float
    dropped_occluded: int
    seconds: float


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, FORMAT_VERSION]))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random colour field + optional oriented texture + pixel noise, [size, size, 3] float32."""
    k = int(rng.integers(2, 7))
    low = rng.integers(0, 256, (k, k, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
    mean = field.mean(axis=(0, 1), keepdims=True)
    field = mean + (field - mean) * rng.uniform(0.3, 0.9)
    if rng.random() < 0.6:
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        theta, wavelength = rng.uniform(0, math.pi), rng.uniform(3.0, size / 4)
        wave = np.sin((xs * math.cos(theta) + ys * math.sin(theta)) * (2 * math.pi / wavelength))
        field += (wave * rng.uniform(6, 22))[..., None]
    field += rng.normal(0.0, rng.uniform(3, 14), (size, size, 1)).astype(np.float32)
    return field


def _clutter(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Distractors that are not objects: jagged random polygons, lines and arcs."""
    size = image.shape[0]
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(*CLUTTER_PER_IMAGE, endpoint=True))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        cx, cy = rng.uniform(0, size, 2)
        r = math.exp(rng.uniform(math.log(3), math.log(size * 0.2)))
        if kind == 0:
            n = int(rng.integers(7, 12))
            t = np.sort(rng.uniform(0, 2 * math.pi, n))
            radius = r * rng.uniform(0.25, 1.0, n)
            draw.polygon(
                list(zip((cx + radius * np.cos(t)).tolist(), (cy + radius * np.sin(t)).tolist(), strict=True)),
                fill=color,
            )
        elif kind == 1:
            x2, y2 = rng.uniform(0, size, 2)
            draw.line([(cx, cy), (x2, y2)], fill=color, width=int(rng.integers(1, 4)))
        else:
            start = float(rng.uniform(0, 360))
            draw.arc(
                [cx - r, cy - r, cx + r, cy + r],
                start,
                start + float(rng.uniform(40, 200)),
                fill=color,
                width=int(rng.integers(1, 4)),
            )
    return np.asarray(canvas, dtype=np.float32)


def _overlap(box: np.ndarray, others: list[np.ndarray]) -> float:
    """Largest fraction of `box` or of another box that the two share."""
    worst = 0.0
    area = (box[2] - box[0]) * (box[3] - box[1])
    for o in others:
        iw = min(box[2], o[2]) - max(box[0], o[0])
        ih = min(box[3], o[3]) - max(box[1], o[1])
        if iw > 0 and ih > 0:
            inter = iw * ih
            worst = max(worst, inter / area, inter / ((o[2] - o[0]) * (o[3] - o[1])))
    return worst


def _far_color(rng: np.random.Generator, reference: np.ndarray, distance: float) -> tuple[int, int, int]:
    """A random colour at least `distance` (RGB L2) from `reference`, or the farthest of a few tries."""
    best, best_d = rng.integers(0, 256, 3), -1.0
    for _ in range(12):
        color = rng.integers(0, 256, 3)
        d = float(np.linalg.norm(color - reference))
        if d > best_d:
            best, best_d = color, d
        if d >= distance:
            break
    return int(best[0]), int(best[1]), int(best[2])


def _mean_under(background: np.ndarray, box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in box)
    return background[max(y1, 0) : max(y2, y1 + 1), max(x1, 0) : max(x2, x1 + 1)].reshape(-1, 3).mean(axis=0)


def sample_shapes(rng: np.random.Generator, background: np.ndarray) -> list[ShapeSpec]:
    """Random objects for one image, placed to limit (not forbid) overlap."""
    size = background.shape[0]
    lo, hi = math.log(MIN_OBJECT_PX), math.log(MAX_OBJECT_FRACTION * size)
    shapes: list[ShapeSpec] = []
    boxes: list[np.ndarray] = []
    for _ in range(int(rng.integers(*OBJECTS_PER_IMAGE, endpoint=True))):
        cls = int(rng.integers(len(CLASS_NAMES)))
        side = math.exp(rng.uniform(lo, hi))
        angle = float(rng.uniform(0, 2 * math.pi))
        aspect = float(rng.uniform(*ELONGATED.get(CLASS_NAMES[cls], (1.0, 1.0))))
        w, h = shape_extent(cls, side, angle, aspect)
        best: tuple[float, np.ndarray] | None = None
        for _ in range(PLACEMENT_TRIES):
            cx = rng.uniform(w / 2, size - w / 2)
            cy = rng.uniform(h / 2, size - h / 2)
            box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            score = _overlap(box, boxes)
            if best is None or score < best[0]:
                best = (score, box)
            if score < 0.25:
                break
        assert best is not None
        box = best[1]
        color = _far_color(rng, _mean_under(background, box), MIN_CONTRAST)
        color2 = _far_color(rng, np.asarray(color, dtype=np.float64), MIN_TEXTURE_CONTRAST)
        shapes.append(
            ShapeSpec(
                cls=cls,
                cx=float((box[0] + box[2]) / 2),
                cy=float((box[1] + box[3]) / 2),
                size=side,
                angle=angle,
                aspect=aspect,
                color=color,
                color2=color2,
                period=float(max(side / rng.uniform(3, 7), 3.0)),
                shade=float(rng.uniform(0, 1)),
            )
        )
        boxes.append(box)
    return shapes


def synth_image(seed: int, index: int, imgsz: int) -> Scene:
    """The scene of image `index` of the dataset with this seed (pure function of its arguments)."""
    rng = _rng(seed, index)
    background = _clutter(rng, _background(rng, imgsz))
    scene = render_scene(background, sample_shapes(rng, background))
    noise = rng.normal(0.0, rng.uniform(1.5, 5), (imgsz, imgsz, 1))
    noisy = scene.image.astype(np.float32) + noise
    return Scene(
        image=np.clip(noisy, 0, 255).astype(np.uint8),
        boxes=scene.boxes,
        classes=scene.classes,
        visible=scene.visible,
        kept=scene.kept,
    )


def split_of(index: int, images: int) -> str:
    """The last VAL_FRACTION of the images (at least one) form the val split."""
    n_val = max(1, round(images * VAL_FRACTION))
    return "val" if index >= images - n_val else "train"


def _yolo_rows(scene: Scene, imgsz: int) -> str:
    rows = []
    for (x1, y1, x2, y2), c in zip(scene.boxes.tolist(), scene.classes.tolist(), strict=True):
        rows.append(
            f"{c} {(x1 + x2) / 2 / imgsz:.6f} {(y1 + y2) / 2 / imgsz:.6f} "
            f"{(x2 - x1) / imgsz:.6f} {(y2 - y1) / imgsz:.6f}"
        )
    return "".join(r + "\n" for r in rows)


def _data_yaml(images: int, imgsz: int, seed: int) -> str:
    header = (
        f"# nasearch synthetic detection dataset: {images} images at {imgsz} px, seed {seed}.\n"
        "# Ultralytics reads images/ + labels/; nasearch reads the COCO json under `annotations`.\n"
    )
    doc = {
        "train": "images/train",
        "val": "images/val",
        "nc": len(CLASS_NAMES),
        "names": list(CLASS_NAMES),
        "annotations": {"train": "annotations/instances_train.json", "val": "annotations/instances_val.json"},
    }
    return header + yamlio.dumps(doc)


def _write_dataset(root: Path, images: int, imgsz: int, seed: int) -> SynthSummary:
    start = time.perf_counter()
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)]
    coco: dict[str, dict] = {
        s: {
            "info": {"description": f"nasearch synthetic shapes, seed {seed}"},
            "images": [],
            "annotations": [],
            "categories": categories,
        }
        for s in ("train", "val")
    }
    for split in coco:
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    sides: list[float] = []
    per_class = np.zeros(len(CLASS_NAMES), dtype=np.int64)
    dropped = 0
    ann_id = 1
    for index in range(images):
        split = split_of(index, images)
        scene = synth_image(seed, index, imgsz)
        name = f"{index + 1:06d}"  # the file stem is the COCO image id, as in COCO itself
        Image.fromarray(scene.image).save(root / "images" / split / f"{name}.jpg", quality=JPEG_QUALITY)
        (root / "labels" / split / f"{name}.txt").write_text(_yolo_rows(scene, imgsz))
        coco[split]["images"].append({"id": index + 1, "file_name": f"{name}.jpg", "width": imgsz, "height": imgsz})
        for (x1, y1, x2, y2), c in zip(scene.boxes.tolist(), scene.classes.tolist(), strict=True):
            w, h = x2 - x1, y2 - y1
            coco[split]["annotations"].append(
                {
                    "id": ann_id,
                    "image_id": index + 1,
                    "category_id": c + 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            ann_id += 1
            sides.append(max(w, h))
            per_class[c] += 1
        dropped += int((~scene.kept).sum())
    for split, doc in coco.items():
        write_json_atomic(doc, root / "annotations" / f"instances_{split}.json")
    (root / "data.yaml").write_text(_data_yaml(images, imgsz, seed))
    side = np.asarray(sides, dtype=np.float64)
    summary = SynthSummary(
        out=str(root),
        images=images,
        train_images=len(coco["train"]["images"]),
        val_images=len(coco["val"]["images"]),
        imgsz=imgsz,
        seed=seed,
        classes=len(CLASS_NAMES),
        boxes=len(sides),
        boxes_per_class=per_class.tolist(),
        box_side_min_px=float(side.min()),
        box_side_median_px=float(np.median(side)),
        box_side_max_px=float(side.max()),
        dropped_occluded=dropped,
        seconds=round(time.perf_counter() - start, 3),
    )
    marker = {
        "version": FORMAT_VERSION,
        "images": images,
        "imgsz": imgsz,
        "seed": seed,
        "min_visible": MIN_VISIBLE,
        "class_names": list(CLASS_NAMES),
        "summary": {k: v for k, v in asdict(summary).items() if k not in ("out", "seconds")},
    }
    (root / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    return summary


def check_synth_args(images: int, imgsz: int) -> None:
    if images < 2:
        raise InputError(OPTION, "images", "at least 2 (one train and one val image)", str(images))
    if not 64 <= imgsz <= 4096:
        raise InputError(OPTION, "imgsz", "an image size in 64..4096", str(imgsz))


def _is_synth_dir(path: Path) -> bool:
    return (path / MARKER).is_file()


def generate_synthetic(out: str | Path, images: int = 400, imgsz: int = 320, seed: int = 0) -> SynthSummary:
    """Write the dataset to `out` via a sibling temp directory and a rename (replacing an earlier synth)."""
    check_synth_args(images, imgsz)
    target = Path(out)
    summary = write_directory_atomically(target, MARKER, lambda tmp: _write_dataset(tmp, images, imgsz, seed))
    return SynthSummary(**{**asdict(summary), "out": str(target)})


def _matches(path: Path, images: int, imgsz: int, seed: int) -> bool:
    try:
        meta = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("version"), meta.get("images"), meta.get("imgsz"), meta.get("seed")) == (
        FORMAT_VERSION,
        images,
        imgsz,
        seed,
    )


def ensure_synthetic(directory: str | Path, images: int = 400, imgsz: int = 320, seed: int = 0) -> Path:
    """The synthetic dataset at `directory`, generated only if missing; safe when processes race.

    Each process generates into its own temp directory and renames it into place; a loser of the race
    discards its copy and uses the winner's (same seed, so same bytes). A directory holding a different
    synthetic dataset is an InputError, never silently replaced.
    """
    check_synth_args(images, imgsz)
    target = Path(directory)
    if _is_synth_dir(target):
        if not _matches(target, images, imgsz, seed):
            raise InputError(
                target / MARKER,
                "<root>",
                f"a synthetic dataset of {images} images at {imgsz} px with seed {seed}",
                "one made with other settings",
            )
        return target
    require_replaceable(target, MARKER)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling_temp(target, "tmp")
    tmp.mkdir()
    try:
        _write_dataset(tmp, images, imgsz, seed)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _matches(target, images, imgsz, seed):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
