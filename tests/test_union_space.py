"""The nano union space: YOLOv8n, YOLOv6n and YOLO-NAS S are points of one space, and every sample builds."""

from __future__ import annotations

import torch

from nasearch.nn.inspect import fused_copy
from nasearch.space import build_model, load_presets, load_space
from tests.conftest import SPACES

UNION = SPACES / "nano_union_space.yaml"


def test_the_three_payoff_presets_and_yolo_nas_are_exact_points_of_it():
    space = load_space(UNION)
    inside = set(space.presets_inside())
    assert {"yolov8n", "yolov6n", "yolo_nas_s", "yolo_nas_m", "yolo_nas_l"} <= inside
    presets = load_presets()
    for name in ("yolov8n", "yolov6n", "yolo_nas_s"):
        assert space.contains(presets[name]) == (True, "inside")
    assert "yolov8m" not in inside  # wider than its widest choices: the space stops at S-class widths


def test_it_holds_every_nano_space_architecture():
    union, nano = load_space(UNION), load_space(SPACES / "yolo_nas_nano_space.yaml")
    for seed in range(20):
        inside, why = union.contains(nano.sample(seed))
        assert inside, why


def test_every_family_mix_it_samples_builds_fuses_and_runs():
    torch.set_num_threads(1)
    space = load_space(UNION)
    mixes = set()
    for seed in range(24):
        arch = space.sample(seed)
        mixes.add((arch.data["neck"]["type"], arch.data["head"]["type"]))
        model = build_model(arch).eval()
        with torch.no_grad():
            outputs = [model(torch.zeros(1, 3, 64, 64)), fused_copy(model).eval()(torch.zeros(1, 3, 64, 64))]
        assert all(o is not None for o in outputs)
    assert len(mixes) >= 6  # necks and heads of different families meet


def test_the_quickstart_starts_from_the_three_presets_and_trains_its_best_longer():
    from nasearch.search.candidate import SearchContext
    from nasearch.search.experiment import load_experiment

    exp = load_experiment("quickstart")
    ctx = SearchContext.create(exp)
    assert ctx.space.name == "nano_union_space"
    assert set(exp.spec.presets) == {"yolov8n", "yolov6n", "yolo_nas_s"} <= set(ctx.space.presets_inside())
    short, longer = exp.spec.objectives.accuracy.rungs
    assert longer.budget["epochs"] > short.budget["epochs"] and longer.budget["images"] == short.budget["images"]
