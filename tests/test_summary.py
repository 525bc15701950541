"""Architecture summaries: per-part parameter counts add up; comparisons flag exactly the differing parts."""

from __future__ import annotations

import copy

from nasearch.nn.inspect import count_params
from nasearch.space import Architecture, build_model, load_arch
from nasearch.space.summary import compare, summarize


def test_summary_parts_add_up_to_the_model():
    arch = load_arch("yolo_nas_s")
    rows = summarize(arch)
    assert [r["part"] for r in rows][:5] == [
        "stem",
        "stage1 (stride 4)",
        "stage2 (stride 8)",
        "stage3 (stride 16)",
        "stage4 (stride 32)",
    ]
    assert rows[1]["type"] == "yolonas_stage" and rows[1]["out"] == 96 and rows[1]["blocks"] == 2
    total = sum(r.get("params", 0) for r in rows)
    assert total == count_params(build_model(arch))


def test_compare_flags_only_what_differs():
    a = load_arch("yolov8n")
    data = copy.deepcopy(a.data)
    data["backbone"]["stages"][2]["blocks"] = 3
    b = Architecture.from_dict({**data, "name": "deeper"})
    rows = compare(a, b)
    flagged = [r["part"] for r in rows if r["differs"]]
    assert flagged == ["stage3 (stride 16)"]
