"""matplotlib for files and notebooks alike: headless (Agg) unless a backend is already in use."""

from __future__ import annotations

import sys
from typing import Any


def pyplot() -> Any:
    """`matplotlib.pyplot`, switching to Agg only when nothing (e.g. a notebook) has chosen a backend."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
