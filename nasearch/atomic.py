"""Writing files so that a failure, a kill or a full disk never leaves half a file or a stray temp file.

Everything is written to a temp name in the target's own directory (so the final rename is atomic and never
crosses file systems) and renamed over the target only once complete; on any failure the temp file is removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_name(path: Path) -> Path:
    """A hidden sibling of `path`, unique to this process, keeping the suffix (some writers choose the format
    by it)."""
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


@contextmanager
def staged(path: str | Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `path`, on failure it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with staged(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    with staged(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
