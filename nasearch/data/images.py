"""Checking image files of a dataset before anything trains on them: readable, not truncated, inside the root.

The check is cheap on purpose (the header, and for a JPEG its last bytes), so it can run over every image of
a split: a full decode of COCO train would take minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from nasearch.data.records import DetectionSplit
from nasearch.errors import InputError

EXIF_ORIENTATION = 0x0112
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
JPEG_END = b"\xff\xd9"
JPEG_TAIL_BYTES = 64  # some writers pad after the end-of-image marker


def _jpeg_is_complete(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - JPEG_TAIL_BYTES))
        return JPEG_END in fh.read()


def image_size(path: Path, file: Path, where: str) -> tuple[int, int]:
    """(width, height) as labelled (EXIF-rotated); an unreadable or truncated image is an InputError naming it."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
            fmt = im.format
        if (fmt == "JPEG" or path.suffix.lower() in JPEG_SUFFIXES) and not _jpeg_is_complete(path):
            raise InputError(
                path,
                "<file>",
                f"a complete image ({where} of {file.name})",
                "a truncated JPEG (no end-of-image marker)",
            )
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(
            path, "<file>", f"a readable image ({where} of {file.name})", f"{type(exc).__name__}: {exc}"
        ) from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def inside_root(name: str) -> bool:
    """Whether the relative file name `name` stays under its root folder (no absolute path, no `..` escaping it)."""
    if os.path.isabs(name):
        return False
    norm = os.path.normpath(name)
    return norm != ".." and not norm.startswith(".." + os.sep)


def check_split_images(split: DetectionSplit) -> None:
    """Open every image of a split that was read without opening them (COCO): YOLO splits already were."""
    if split.fmt == "yolo":
        return
    for r in split.records:
        image_size(r.path, Path(split.source), f"image id {r.image_id} of split {split.name}")
