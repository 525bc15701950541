"""Ultralytics-style datasets: a `data.yaml` plus one `cls cx cy w h` (normalized) txt file per image.

Images of a split come from a directory (recursively) or a txt list file; the label of
`.../images/.../x.jpg` is `.../labels/.../x.txt` (a missing label file means an image without objects).
Rows with more than 5 numbers are polygons `cls x1 y1 x2 y2 ...`; their box is the polygon's bounds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nasearch import yamlio
from nasearch.data.images import image_size
from nasearch.data.records import (
    DetectionSplit,
    ImageRecord,
    check_box,
    require_nonempty,
    stack_boxes,
    stack_classes,
)
from nasearch.errors import InputError, describe

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
ROW_FORM = "a row `cls cx cy w h` (normalized) or a polygon `cls x1 y1 x2 y2 x3 y3 ...`"


def class_names_from(data: dict[str, Any], file: Path) -> tuple[str, ...]:
    """`names` as a list, or a dict {0: name, 1: name, ...} with contiguous keys; `nc` must agree."""
    names = data.get("names")
    if isinstance(names, dict):
        keys = sorted(names, key=lambda k: (not isinstance(k, int), k))
        if keys != list(range(len(names))):
            raise InputError(file, "names", "a mapping with the keys 0..nc-1", describe(names))
        names = [names[k] for k in keys]
    if not isinstance(names, list) or not names:
        raise InputError(
            file,
            "names",
            "a non-empty list of class names (or a mapping id: name)",
            "missing" if "names" not in data else describe(names),
        )
    for i, n in enumerate(names):
        if not isinstance(n, str | int) or isinstance(n, bool) or str(n) == "":
            raise InputError(file, f"names[{i}]", "a class name", describe(n))
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        raise InputError(file, "nc", f"{len(names)} (the number of names)", describe(nc))
    return tuple(str(n) for n in names)


def dataset_root(data: dict[str, Any], file: Path) -> Path:
    """`path` of the data.yaml: absolute, relative to the yaml's folder, or (if absent) the yaml's folder."""
    raw = data.get("path")
    if raw is None or raw == "":
        return file.parent
    if not isinstance(raw, str):
        raise InputError(file, "path", "a directory path", describe(raw))
    p = Path(raw).expanduser()
    if p.is_absolute():
        return p
    beside = file.parent / p
    return beside if beside.exists() or not p.exists() else p


def label_path_for(image: Path) -> Path:
    """The label file of an image: the last `images` folder of its path replaced by `labels`, suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _list_images(entry: str, root: Path, file: Path, where: str) -> list[Path]:
    p = Path(entry).expanduser()
    p = p if p.is_absolute() else root / p
    if p.is_dir():
        return sorted(
            Path(d) / f for d, _, files in os.walk(p) for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES
        )
    if p.is_file() and p.suffix == ".txt":
        out = []
        for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            q = Path(line)
            q = q if q.is_absolute() else p.parent / q
            if not q.is_file():
                raise InputError(p, f"line {n}", "the path of an existing image file", f"{line!r} missing")
            out.append(q)
        return out
    raise InputError(file, where, "an image directory or a txt list of images", f"{entry!r} ({p} missing)")


def read_label_file(label: Path, width: int, height: int, nc: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse one label file into pixel xyxy boxes and class ids; bad rows name their line number."""
    boxes: list[np.ndarray] = []
    classes: list[int] = []
    try:
        text = label.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(label, "<file>", "UTF-8 text", "binary data") from None
    for n, line in enumerate(text.splitlines(), start=1):
        row = line.split()
        if not row:
            continue
        where = f"line {n}"
        try:
            values = [float(v) for v in row]
        except ValueError:
            raise InputError(label, where, ROW_FORM, repr(line.strip())) from None
        if len(values) != 5 and (len(values) < 7 or len(values) % 2 == 0):
            raise InputError(label, where, ROW_FORM, f"{len(values)} numbers")
        cls = values[0]
        if not cls.is_integer() or not 0 <= cls < nc:
            raise InputError(label, where, f"a class id in 0..{nc - 1}", row[0])
        if len(values) == 5:
            cx, cy, w, h = values[1:]
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:
            xs, ys = values[1::2], values[2::2]
            x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        pixel = (x1 * width, y1 * height, x2 * width, y2 * height)
        boxes.append(check_box(pixel, width, height, label, where, shown=repr(line.strip())))
        classes.append(int(cls))
    return stack_boxes(boxes), stack_classes(classes)


def _image_ids(images: list[Path]) -> list[int]:
    """Numeric file stems when they are unique (as COCO's own file names are), else 1..N."""
    stems = [p.stem for p in images]
    if all(s.isdigit() for s in stems) and len(set(map(int, stems))) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(images) + 1))


def load_yolo(data_yaml: str | Path, split: str = "val") -> DetectionSplit:
    """Read one split (`train`, `val`, `test`, ...) of an Ultralytics data.yaml."""
    file = Path(data_yaml)
    data = yamlio.load_mapping(file)
    names = class_names_from(data, file)
    root = dataset_root(data, file)
    entry = data.get(split)
    if entry is None:
        raise InputError(file, split, f"the {split} images (a directory or txt list)", "missing")
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for i, e in enumerate(entries):
        where = split if not isinstance(entry, list) else f"{split}[{i}]"
        if not isinstance(e, str):
            raise InputError(file, where, "a path string", describe(e))
        images.extend(_list_images(e, root, file, where))
    require_nonempty(images, file, split)
    if not any(label_path_for(p).is_file() for p in images):
        raise InputError(
            file,
            split,
            f"label files beside the images, e.g. {label_path_for(images[0])}",
            "no label file for any image",
        )
    records = []
    for image_id, path in zip(_image_ids(images), images, strict=True):
        width, height = image_size(path, file, split)
        label = label_path_for(path)
        boxes, classes = (
            read_label_file(label, width, height, len(names))
            if label.is_file()
            else (stack_boxes([]), stack_classes([]))
        )
        records.append(
            ImageRecord(path=path, width=width, height=height, image_id=image_id, boxes=boxes, classes=classes)
        )
    return DetectionSplit(
        name=split,
        records=tuple(records),
        class_names=names,
        category_ids=tuple(range(1, len(names) + 1)),
        source=file,
        fmt="yolo",
    )
