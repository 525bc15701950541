"""The one in-memory form of a detection dataset split, produced by every reader.

Boxes are xyxy pixels of the original image (float32), class ids are contiguous 0..nc-1; the COCO image id
and the COCO category id of every class are kept so predictions can be scored against COCO ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from nasearch.errors import InputError

BOX_TOLERANCE_PX = 1.0  # how far a box may stick out of its image before it is an error (it is clipped)


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


def empty_classes() -> np.ndarray:
    return np.zeros((0,), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One image: where it is, its size, and its labelled boxes (crowd regions kept apart)."""

    path: Path
    width: int
    height: int
    image_id: int
    boxes: np.ndarray = field(default_factory=empty_boxes)  # [n, 4] float32 xyxy pixels
    classes: np.ndarray = field(default_factory=empty_classes)  # [n] int64 in 0..nc-1
    crowd_boxes: np.ndarray = field(default_factory=empty_boxes)  # COCO iscrowd=1 regions (ignored in eval)
    crowd_classes: np.ndarray = field(default_factory=empty_classes)


@dataclass(frozen=True, eq=False)
class DetectionSplit:
    """A dataset split: records, class names and the COCO ids needed for evaluation.

    `source` is the file the split was read from (used in error lines); `ann_file` is the COCO json it came
    from, if any.
    """

    name: str
    records: tuple[ImageRecord, ...]
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]  # COCO category id of class index i
    source: Path
    ann_file: Path | None = None
    fmt: str = "coco"  # "coco" or "yolo": which reader produced it

    @property
    def nc(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.records)

    def num_boxes(self) -> int:
        return sum(len(r.boxes) for r in self.records)

    def class_counts(self) -> np.ndarray:
        """Boxes per class index, shape [nc]."""
        counts = np.zeros(self.nc, dtype=np.int64)
        for r in self.records:
            np.add.at(counts, r.classes, 1)
        return counts

    def subset(self, indices: Sequence[int]) -> DetectionSplit:
        """The same split restricted to some images (e.g. a fixed proxy-evaluation subset)."""
        return replace(self, records=tuple(self.records[i] for i in indices))

    def head(self, n: int) -> DetectionSplit:
        return self.subset(range(min(n, len(self.records))))


def require_nonempty(records: Sequence[ImageRecord], file: str | Path, where: str) -> None:
    if not records:
        raise InputError(file, where, "at least one image in the split", "none")


def check_box(
    box: Sequence[float], width: int, height: int, file: str | Path, where: str, shown: str | None = None
) -> np.ndarray:
    """Validate one xyxy pixel box against its image; return it clipped to the image as float32.

    Boxes with non-positive size are errors; boxes reaching out of the image by more than
    BOX_TOLERANCE_PX are errors; smaller overhangs are clipped.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    found = shown if shown is not None else f"[{x1:g}, {y1:g}, {x2:g}, {y2:g}] (xyxy)"
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise InputError(file, where, "finite box coordinates", found)
    if x2 <= x1 or y2 <= y1:
        raise InputError(file, where, "a box with positive width and height", found)
    tol = BOX_TOLERANCE_PX
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        raise InputError(file, where, f"a box inside the {width}x{height} image (±{tol:g} px)", found)
    out = np.array([max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))], dtype=np.float32)
    if out[2] <= out[0] or out[3] <= out[1]:
        raise InputError(file, where, f"a box overlapping the {width}x{height} image", found)
    return out


def stack_boxes(boxes: list[np.ndarray]) -> np.ndarray:
    return np.stack(boxes).astype(np.float32) if boxes else empty_boxes()


def stack_classes(classes: list[int]) -> np.ndarray:
    return np.asarray(classes, dtype=np.int64) if classes else empty_classes()
