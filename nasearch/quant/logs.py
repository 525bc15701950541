"""ONNX Runtime's quantizer reports through the root logger (pre-processing advice, bias layout notes on
every conv); a command's stderr should carry our progress, not pages of those."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_quantizer(level: int = logging.ERROR) -> Iterator[None]:
    root = logging.getLogger()
    before = root.level
    root.setLevel(max(before, level))
    try:
        yield
    finally:
        root.setLevel(before)
