"""The validation curve of a run and whether it has stopped rising (`curve.json`, `nasearch train --json`).

A benchmark that compares trained models must show that each one was trained to its plateau, not stopped
while its mAP was still climbing. The test is simple and stated with its numbers: the best mAP50-95 of the
last `window` epochs against the best before them; the curve has stopped rising when that gain is below
`tolerance` points.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasearch import atomic

CURVE = "curve.json"
TOLERANCE = 0.5  # mAP50-95 points (percent)
MAP, MAP50 = "metrics/mAP50-95", "metrics/mAP50"


def plateau_window(epochs: int) -> int:
    """The last fifth of the run, at least 3 epochs."""
    return max(3, epochs // 5)


def plateau(maps: Sequence[float], window: int, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Gain of the best of the last `window` values over the best before them; `reached` is None when the
    run is too short to tell (no epoch before the window)."""
    if len(maps) <= window:
        return {
            "window": window,
            "tolerance": tolerance,
            "gain": None,
            "reached": None,
            "text": f"plateau: not judged ({len(maps)} epochs, the test needs more than {window})",
        }
    gain = max(maps[-window:]) - max(maps[:-window])
    reached = gain < tolerance
    verdict = "stopped rising" if reached else "still rising"
    return {
        "window": window,
        "tolerance": tolerance,
        "gain": round(gain, 4),
        "reached": reached,
        "text": f"plateau: best of the last {window} epochs {gain:+.2f} over the earlier best "
        f"({'<' if reached else '>='} {tolerance:g}: {verdict})",
    }


def curve_report(history: Sequence[dict[str, Any]], epochs: int, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Per-epoch validation mAP, the final and best figures, and the plateau test of a run of `epochs`."""
    points = [
        {"epoch": int(r["epoch"]), "map": float(r[MAP]), "map50": float(r.get(MAP50, float("nan")))}
        for r in history
        if r.get(MAP) is not None
    ]
    maps = [p["map"] for p in points]
    best = max(range(len(maps)), key=lambda i: (maps[i], -i)) if maps else None
    return {
        "curve": points,
        "final_map": maps[-1] if maps else None,
        "final_map50": points[-1]["map50"] if points else None,
        "best_map": maps[best] if best is not None else None,
        "best_epoch": points[best]["epoch"] if best is not None else None,
        "plateau": plateau(maps, plateau_window(epochs), tolerance),
    }


def write_curve(report: dict[str, Any], path: str | Path) -> Path:
    return atomic.write_text(path, json.dumps(report, indent=1) + "\n")
