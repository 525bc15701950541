"""COCO detection JSON (`instances_*.json`): reading into a DetectionSplit and writing one back out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nasearch import atomic
from nasearch.data.images import inside_root
from nasearch.data.records import (
    DetectionSplit,
    ImageRecord,
    check_box,
    require_nonempty,
    stack_boxes,
    stack_classes,
)
from nasearch.errors import InputError, describe


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; missing, binary or malformed files are InputErrors with the line number."""
    p = Path(path)
    if not p.is_file():
        found = "a directory" if p.is_dir() else "no such path"
        raise InputError(path, "<file>", "an existing JSON file", found)
    try:
        with p.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except UnicodeDecodeError:
        raise InputError(path, "<file>", "UTF-8 JSON text", "binary data") from None
    except json.JSONDecodeError as exc:
        found = f"{exc.msg} (column {exc.colno})"
        raise InputError(path, f"line {exc.lineno}", "valid JSON", found) from None


def _int_field(obj: dict[str, Any], key: str, file: Path, where: str, positive: bool = False) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or (positive and value <= 0):
        raise InputError(
            file,
            f"{where}.{key}",
            "a positive integer" if positive else "an integer",
            "missing" if key not in obj else describe(value),
        )
    return value


def _list_field(doc: dict[str, Any], key: str, file: Path) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise InputError(file, key, "a list", "missing" if key not in doc else describe(value))
    return value


def _categories(doc: dict[str, Any], file: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    cats = _list_field(doc, "categories", file)
    if not cats:
        raise InputError(file, "categories", "at least one category", "an empty list")
    seen: dict[int, str] = {}
    for i, cat in enumerate(cats):
        where = f"categories[{i}]"
        if not isinstance(cat, dict):
            raise InputError(file, where, "a mapping with id and name", describe(cat))
        cid = _int_field(cat, "id", file, where)
        name = cat.get("name")
        if not isinstance(name, str) or not name:
            raise InputError(file, f"{where}.name", "a non-empty string", describe(name))
        if cid in seen:
            raise InputError(file, f"{where}.id", "a unique category id", f"{cid} again")
        seen[cid] = name
    ids = tuple(sorted(seen))
    return tuple(seen[c] for c in ids), ids


def load_coco(ann_file: str | Path, image_dir: str | Path, name: str | None = None) -> DetectionSplit:
    """Read a COCO detection json whose `file_name`s live under `image_dir`.

    Classes are the categories sorted by id; crowd annotations are kept apart (they are ignore regions in
    COCO evaluation). Every image must exist; images without annotations are kept as background images.
    """
    file = Path(ann_file)
    image_root = Path(image_dir)
    doc = read_json(file)
    if not isinstance(doc, dict):
        raise InputError(file, "<root>", "a COCO mapping with images, annotations, categories", describe(doc))
    class_names, category_ids = _categories(doc, file)
    class_of = {cid: i for i, cid in enumerate(category_ids)}
    images = _list_field(doc, "images", file)
    annotations = _list_field(doc, "annotations", file) if "annotations" in doc else []
    if not image_root.is_dir():
        raise InputError(image_root, "<file>", f"the image directory of {file.name}", "no such directory")

    entries: list[tuple[int, Path, int, int]] = []
    index_of: dict[int, int] = {}
    for i, img in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            raise InputError(file, where, "a mapping with id, file_name, width, height", describe(img))
        image_id = _int_field(img, "id", file, where)
        if image_id in index_of:
            raise InputError(file, f"{where}.id", "a unique image id", f"{image_id} again")
        fname = img.get("file_name")
        if not isinstance(fname, str) or not fname:
            raise InputError(file, f"{where}.file_name", "a non-empty string", describe(fname))
        width = _int_field(img, "width", file, where, positive=True)
        height = _int_field(img, "height", file, where, positive=True)
        if not inside_root(fname):
            raise InputError(
                file,
                f"{where}.file_name",
                f"a file name relative to {image_root}, inside it",
                f"{fname!r} (outside the image folder)",
            )
        path = image_root / fname
        if not path.is_file():
            raise InputError(
                file, f"{where}.file_name", f"an existing image file under {image_root}", f"{fname!r} missing"
            )
        index_of[image_id] = len(entries)
        entries.append((image_id, path, width, height))
    require_nonempty(entries, file, "images")

    boxes: list[list[np.ndarray]] = [[] for _ in entries]
    classes: list[list[int]] = [[] for _ in entries]
    crowd: list[list[np.ndarray]] = [[] for _ in entries]
    crowd_cls: list[list[int]] = [[] for _ in entries]
    for k, ann in enumerate(annotations):
        where = f"annotations[{k}]"
        if not isinstance(ann, dict):
            raise InputError(file, where, "a mapping with image_id, category_id, bbox", describe(ann))
        image_id = _int_field(ann, "image_id", file, where)
        if image_id not in index_of:
            raise InputError(file, f"{where}.image_id", "the id of an entry in images", str(image_id))
        cid = _int_field(ann, "category_id", file, where)
        if cid not in class_of:
            raise InputError(file, f"{where}.category_id", f"one of the category ids {list(category_ids)}", str(cid))
        bbox = ann.get("bbox")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
        ):
            raise InputError(file, f"{where}.bbox", "[x, y, width, height] numbers", describe(bbox))
        j = index_of[image_id]
        _, _, width, height = entries[j]
        x, y, w, h = (float(v) for v in bbox)
        box = check_box(
            (x, y, x + w, y + h), width, height, file, f"{where}.bbox", shown=f"[{x:g}, {y:g}, {w:g}, {h:g}] (xywh)"
        )
        if ann.get("iscrowd", 0):
            crowd[j].append(box)
            crowd_cls[j].append(class_of[cid])
        else:
            boxes[j].append(box)
            classes[j].append(class_of[cid])

    records = tuple(
        ImageRecord(
            path=path,
            width=width,
            height=height,
            image_id=image_id,
            boxes=stack_boxes(boxes[j]),
            classes=stack_classes(classes[j]),
            crowd_boxes=stack_boxes(crowd[j]),
            crowd_classes=stack_classes(crowd_cls[j]),
        )
        for j, (image_id, path, width, height) in enumerate(entries)
    )
    split_name = name or file.stem.removeprefix("instances_")
    return DetectionSplit(
        name=split_name,
        records=records,
        class_names=class_names,
        category_ids=category_ids,
        source=file,
        ann_file=file,
        fmt="coco",
    )


def coco_dict(split: DetectionSplit, image_root: Path | None = None) -> dict[str, Any]:
    """COCO ground truth for a split (any reader), e.g. for faster-coco-eval.

    `file_name` is relative to `image_root` when given (else the file's name); `area` is the box area.
    """
    images, annotations = [], []
    ann_id = 1
    for r in split.records:
        fname = r.path.relative_to(image_root).as_posix() if image_root is not None else r.path.name
        images.append({"id": r.image_id, "file_name": fname, "width": r.width, "height": r.height})
        for boxes, classes, crowd in ((r.boxes, r.classes, 0), (r.crowd_boxes, r.crowd_classes, 1)):
            for box, cls in zip(boxes.tolist(), classes.tolist(), strict=True):
                x1, y1, x2, y2 = (round(v, 2) for v in box)
                w, h = round(x2 - x1, 2), round(y2 - y1, 2)
                annotations.append(
                    {
                        "id": ann_id,
                        "image_id": r.image_id,
                        "category_id": split.category_ids[cls],
                        "bbox": [x1, y1, w, h],
                        "area": round(w * h, 2),
                        "iscrowd": crowd,
                    }
                )
                ann_id += 1
    categories = [
        {"id": cid, "name": name, "supercategory": "object"}
        for cid, name in zip(split.category_ids, split.class_names, strict=True)
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_json_atomic(doc: Any, path: str | Path) -> None:
    """Write JSON through a temp file and os.replace, so a crash never leaves half a file."""
    with atomic.staged(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")


def write_coco(split: DetectionSplit, ann_file: str | Path, image_root: Path | None = None) -> None:
    """Write a split as a COCO detection json (atomically)."""
    write_json_atomic(coco_dict(split, image_root), ann_file)
