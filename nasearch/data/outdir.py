"""Write a generated data set directory all at once: into a sibling temp directory, then a rename.

A kill or a failure leaves the earlier directory (if any) intact; a directory is only replaced when it is
empty or holds an earlier output of the same generator (its marker file present).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nasearch.errors import InputError

T = TypeVar("T")


def sibling_temp(out: Path, tag: str) -> Path:
    return out.parent / f".{out.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def require_replaceable(out: Path, marker: str) -> None:
    """`out` is absent, an empty directory, or an earlier output holding `marker`."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "<file>", "a directory for the dataset", "a file")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        expected = f"a new or empty directory (or an earlier output with {marker})"
        raise InputError(out, "<file>", expected, "a non-empty directory")


def write_directory_atomically(target: Path, marker: str, write: Callable[[Path], T]) -> T:
    """`write(tmp)` fills a fresh sibling directory which then replaces `target` (kept intact on failure)."""
    require_replaceable(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling_temp(target, "tmp")
    tmp.mkdir()
    try:
        result = write(tmp)
        if target.is_dir() and any(target.iterdir()):
            old = sibling_temp(target, "old")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if target.is_dir():
                target.rmdir()
            os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
