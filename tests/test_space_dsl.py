"""The search-space DSL: size, sampling, membership, round trips and hashes."""

from __future__ import annotations

import copy

import pytest

from nasearch import yamlio
from nasearch.space import Architecture, load_arch, load_space
from nasearch.space import decisions as dec
from nasearch.space.constraints import parse_path, select
from tests.conftest import PRESETS, SPACES


def test_tiny_cardinality_matches_brute_force(tiny_space_path):
    space = load_space(tiny_space_path)
    every = list(dec.enumerate_all(space.tree))
    # stem 2 × stage1 (2 widths × 2 depths) × stage2 (1 + 2 branches) × neck.up2 2
    assert len(every) == space.cardinality() == 48
    assert len({Architecture.from_dict(a).hash for a in every}) == 48
    feasible = [a for a in every if not space.violations(a)]
    assert 0 < len(feasible) < 48
    assert space.feasible_fraction() == pytest.approx(len(feasible) / 48)


def test_brute_force_agrees_on_conditional_choice():
    tree = {
        "a": {"choice": [{"x": 1}, {"x": {"range": [1, 3]}, "y": {"choice": [True, False]}}]},
        "b": {"range": [0.0, 1.0], "step": 0.25},
    }
    assert dec.cardinality(tree) == (1 + 3 * 2) * 5 == len(list(dec.enumerate_all(tree)))
    names = [d.name for d in dec.list_decisions(tree)]
    assert names == ["a", "a|1.x", "a|1.y", "b"]


def test_sampling_is_reproducible_and_feasible(tiny_space_path):
    space = load_space(tiny_space_path)
    first = [space.sample(seed).hash for seed in range(12)]
    again = [space.sample(seed).hash for seed in range(12)]
    assert first == again
    assert len(set(first)) >= 5
    for seed in range(12):
        arch = space.sample(seed)
        assert space.violations(arch.data) == []
        assert space.contains(arch) == (True, "inside")


def test_round_trip_is_exact(tmp_path, tiny_space_path):
    arch = load_space(tiny_space_path).sample(7)
    path = arch.save(tmp_path / "a.yaml")
    back = load_arch(path)
    assert back.data == arch.data
    assert back.hash == arch.hash
    assert back.dumps() == arch.dumps() == path.read_text()


def test_hash_ignores_name_and_key_order_but_not_content():
    arch = load_arch(PRESETS / "yolov8n.yaml")
    renamed = Architecture.from_dict({**arch.data, "name": "other"})
    reordered = Architecture.from_dict(dict(reversed(list(arch.data.items()))))
    assert renamed.hash == reordered.hash == arch.hash
    changed = copy.deepcopy(arch.data)
    changed["backbone"]["stages"][2]["blocks"] = 3
    assert Architecture.from_dict(changed).hash != arch.hash


def test_hash_is_pinned():
    """Caches and latency databases key on this value: changing the canonical form must be deliberate."""
    assert load_arch(PRESETS / "yolov8n.yaml").hash == "ef40010c3bebdec2"


def test_defaults_are_filled_so_equal_architectures_hash_equal():
    arch = load_arch(PRESETS / "yolov8n.yaml")
    explicit = copy.deepcopy(arch.data)
    explicit["backbone"]["stages"][0]["e"] = 0.5
    assert Architecture.from_dict(explicit).hash == arch.hash


def test_presets_inside_yolov8_space():
    space = load_space(SPACES / "yolov8_space.yaml")
    assert {"yolov8n", "yolov8s", "yolov8m", "yolov8l", "yolov8x"} <= set(space.presets_inside())
    assert space.cardinality_log10() >= 14


def test_contains_explains_why_not():
    space = load_space(SPACES / "yolov8_space.yaml")
    data = copy.deepcopy(load_arch(PRESETS / "yolov8n.yaml").data)
    data["backbone"]["stages"][1]["out"] = 72
    inside, reason = space.contains(Architecture.from_dict(data))
    assert not inside
    assert "backbone.stages[1].out" in reason and "72" in reason
    data["backbone"]["stages"][1]["out"] = 64
    data["backbone"]["stages"][2]["out"] = 32  # allowed value? no: 32 is not a stage-3 width
    assert not space.contains(Architecture.from_dict(data))[0]


def test_constraint_violation_is_reported():
    space = load_space(SPACES / "yolov8_space.yaml")
    data = copy.deepcopy(load_arch(PRESETS / "yolov8s.yaml").data)
    data["backbone"]["stages"][2]["out"] = 128  # stage 3 narrower than stage 2 (128 ≥ 128 is fine) ...
    data["backbone"]["stages"][1]["out"] = 192  # ... now 192 then 128 decreases
    inside, reason = space.contains(Architecture.from_dict(data))
    assert not inside and "non_decreasing" in reason


def test_paths_and_wildcards():
    assert parse_path("backbone.stages.*.out") == ["backbone", "stages", None, "out"]
    tree = {"s": [{"o": 1}, {"o": 2}, {"x": 0}]}
    assert select(tree, parse_path("s.*.o")) == [((0,), 1), ((1,), 2)]
    assert select(tree, parse_path("s.1.o")) == [((), 2)]


def test_float_range_values_are_on_the_grid():
    node = {"range": [0.25, 1.0], "step": 0.25}
    assert dec.range_values(node) == [0.25, 0.5, 0.75, 1.0]
    assert dec.match(node, 0.75) is None
    assert dec.match(node, 0.6) is not None


def test_yaml_dump_is_stable():
    arch = load_arch(PRESETS / "yolov8m.yaml")
    assert yamlio.loads(arch.dumps()) == arch.data


def test_assignments_replay_to_the_same_architecture():
    space = load_space(SPACES / "yolov8_space.yaml")
    from nasearch.space.space import decision_values

    for name in ("yolov8n", "yolov8x"):
        arch = load_arch(PRESETS / f"{name}.yaml")
        answers = decision_values(space, arch)
        assert answers is not None and len(answers) == len(space.decisions())
        replayed = space.to_arch(space.resolve(dec.ReplayChooser(answers)))
        assert replayed.hash == arch.hash
    sampled = space.sample(5)
    assert space.to_arch(space.resolve(dec.ReplayChooser(decision_values(space, sampled)))).hash == sampled.hash
