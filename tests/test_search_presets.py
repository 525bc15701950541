"""The end of a search: each preset against the best found model at or below its latency (a proxy figure)."""

from __future__ import annotations

import pytest

from nasearch.search.results import PRESET_LABEL, preset_comparison, preset_lines


def _row(
    trial: int, preset: str, rungs: list[tuple[int, float, float]], feasible: bool = True, violations: str = ""
) -> dict:
    return {
        "trial": trial,
        "state": "complete",
        "preset": preset,
        "feasible": feasible,
        "duplicate_of": None,
        "arch_hash": f"h{trial}",
        "arch_name": f"a{trial}",
        "params": 1000,
        "gflops": 0.1,
        "latency_ms": rungs[0][1] if rungs else 9.0,
        "violations": violations,
        "_yaml": "",
        "_rungs": [
            {
                "rung": r,
                "latency_ms": lat,
                "accuracy": acc,
                "kind": "short_train_map" if r else "naswot",
                "feasible": feasible,
                "latency_measured": True,
            }
            for r, lat, acc in rungs
        ],
    }


ROWS = [
    _row(0, "yolov8n", [(0, 2.0, 200.0), (1, 2.0, 1.5)]),
    _row(1, "yolo_nas_s", [(0, 2.7, 198.0), (1, 2.7, 2.4)]),
    _row(2, "yolov6n", [], feasible=False, violations="latency_ms over its limit by 20.0%"),
    _row(3, "", [(0, 1.9, 190.0), (1, 1.9, 1.8)]),  # found: faster and better than yolov8n
    _row(4, "", [(0, 2.6, 199.0), (1, 2.6, 2.1)]),  # found: faster than yolo_nas_s but less accurate
    _row(5, "", [(0, 2.5, 205.0)]),  # found, screened only: not comparable at rung 1
    _row(6, "yolov8s", [(0, 1.0, 150.0)]),  # a preset screened only: compared at rung 0
]


def test_each_preset_is_compared_at_its_own_rung_and_latency():
    by = {p["preset"]: p for p in preset_comparison(ROWS)}
    v8 = by["yolov8n"]
    assert v8["rung"] == 1 and v8["best_found"]["trial"] == 3 and v8["gain"] == pytest.approx(0.3)
    assert v8["front_ahead"] is True and v8["label"] == PRESET_LABEL
    nas = by["yolo_nas_s"]  # trials 3 and 4 are at or below 2.7 ms: the better one (2.1) still trails 2.4
    assert nas["best_found"]["trial"] == 4 and nas["gain"] == pytest.approx(-0.3) and nas["front_ahead"] is False
    assert by["yolov6n"]["status"].startswith("over the constraints") and by["yolov6n"]["gain"] is None
    assert by["yolov8s"]["rung"] == 0 and by["yolov8s"]["status"] == "no found model at or below its latency"
    lines = preset_lines(list(by.values()))
    assert len(lines) == 4 and all("proxy figure" in line for line in lines if "best found" in line)
    assert "+0.3" in lines[0] and "found model ahead" in lines[0]
