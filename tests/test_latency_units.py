"""Splitting detectors into units, and signatures that tell apart every shape-relevant difference."""

from __future__ import annotations

import copy
from pathlib import Path

import onnx
import pytest
import torch

from nasearch.latency.units import arch_units
from nasearch.nn.detector import decode
from nasearch.onnxio.export import export_module
from nasearch.space import Architecture, load_space
from tests.fixtures import micro_neck_head

BASE = {
    "name": "micro",
    "nc": 4,
    "imgsz": 64,
    "reg_max": 8,
    "act": "silu",
    "backbone": {
        "stem": {"type": "conv_stem", "out": 8, "k": 3},
        "stages": [
            {"type": "c2f_stage", "out": 16, "blocks": 1, "shortcut": True},
            {"type": "c2f_stage", "out": 16, "blocks": 2, "shortcut": True},
            {"type": "c2f_stage", "out": 32, "blocks": 1, "shortcut": True},
            {"type": "c2f_stage", "out": 32, "blocks": 1, "shortcut": True},
        ],
        "context": {"type": "sppf", "out": 32, "k": 5},
    },
    **micro_neck_head(),
}

NAMES = [
    "stem",
    "stages.0",
    "stages.1",
    "stages.2",
    "stages.3",
    "context",
    "neck.up",
    "neck.td1",
    "neck.up#2",
    "neck.td2",
    "neck.down1",
    "neck.bu1",
    "neck.down2",
    "neck.bu2",
    "head.box.0",
    "head.cls.0",
    "head.box.1",
    "head.cls.1",
    "head.box.2",
    "head.cls.2",
    "decode",
]


def arch(**changes: object) -> Architecture:
    """BASE with dotted-path changes, e.g. `arch(**{"backbone.stages.1.shortcut": False})`."""
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        node: object = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]  # type: ignore[index]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value  # type: ignore[index]
    return Architecture.from_dict(data)


def signatures(a: Architecture, imgsz: int = 64) -> dict[str, str]:
    return {u.name: u.signature for u in arch_units(a, imgsz)[1]}


def test_units_cover_the_network_in_execution_order():
    _, units = arch_units(arch(), 64)
    assert [u.name for u in units] == NAMES
    kinds = [u.kind for u in units]
    assert kinds[:6] == ["stem", "stage", "stage", "stage", "stage", "context"]
    assert set(kinds[6:14]) == {"neck"} and set(kinds[14:20]) == {"head"} and kinds[20] == "decode"
    assert units[1].block_type == "c2f_stage" and units[7].block_type == "v8_pan/C2f"
    assert units[0].description["inputs"] == [[[1, 3, 64, 64], "torch.float32"]]
    assert units[-1].description["outputs"] == [[[1, 84, 4], "torch.float32"], [[1, 84, 4], "torch.float32"]]


def test_meta_and_real_traces_give_the_same_signatures():
    a = arch()
    meta = [u.signature for u in arch_units(a, 64)[1]]
    real = [u.signature for u in arch_units(a, 64, real=True)[1]]
    assert meta == real


# (change, units whose signature must change, units whose signature must stay)
CHANGES = [
    ({"backbone.stem.out": 16}, {"stem", "stages.0"}, set()),
    ({"backbone.stem.k": 5}, {"stem"}, {"stages.0"}),
    ({"backbone.stem.act": "relu"}, {"stem"}, {"stages.0"}),
    ({"backbone.stages.1.shortcut": False}, {"stages.1"}, {"stem", "stages.0", "stages.2"}),
    ({"backbone.stages.1.blocks": 3}, {"stages.1"}, {"stages.0", "stages.2"}),
    ({"backbone.stages.1.e": 0.25}, {"stages.1"}, {"stages.0", "stages.2"}),
    ({"backbone.stages.1.act": "relu"}, {"stages.1"}, {"stages.0", "stages.2"}),
    ({"backbone.stages.2.out": 48}, {"stages.2", "stages.3", "neck.td1"}, {"stages.1"}),
    ({"backbone.context.k": 3}, {"context"}, {"stages.3", "neck.up"}),
    ({"backbone.context.hidden": 8}, {"context"}, {"stages.3"}),
    ({"neck.up1.blocks": 2}, {"neck.td1"}, {"context", "neck.up", "neck.td2"}),
    (
        {"neck.up2.out": 24},
        {"neck.td2", "neck.down1", "neck.bu1", "head.box.0", "head.cls.0"},
        {"neck.td1", "head.box.1"},
    ),
    ({"neck.shortcut": True}, {"neck.td1", "neck.td2", "neck.bu1", "neck.bu2"}, {"neck.up", "neck.down1"}),
    ({"neck.e": 0.25}, {"neck.td1", "neck.bu2"}, {"neck.down1"}),
    ({"head.box_width": 32}, {"head.box.0", "head.box.1", "head.box.2"}, {"head.cls.0", "decode"}),
    ({"head.cls_width": 32}, {"head.cls.0", "head.cls.2"}, {"head.box.0", "decode"}),
    ({"nc": 6}, {"head.cls.0", "decode"}, {"head.box.0", "neck.bu2"}),
    ({"reg_max": 4}, {"head.box.0", "decode"}, {"head.cls.0"}),
]


@pytest.mark.parametrize(("change", "differ", "same"), CHANGES, ids=[next(iter(c[0])) for c in CHANGES])
def test_every_shape_relevant_parameter_changes_the_signature(change, differ, same):
    base, other = signatures(arch()), signatures(arch(**change))
    for name in differ:
        assert base[name] != other[name], f"{name} kept its signature after {change}"
    for name in same:
        assert base[name] == other[name], f"{name} changed its signature after {change}"


def test_unit_flops_add_up_to_the_network():
    from torch.utils.flop_counter import FlopCounterMode

    model, units = arch_units(arch(), 64)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, 64, 64, device="meta"))
    assert sum(u.features["gflops"] for u in units) * 1e9 == pytest.approx(counter.get_total_flops())
    by_name = {u.name: u.features for u in units}
    assert by_name["stem"]["convs"] == 1 and by_name["stem"]["io_melems"] == pytest.approx(
        (3 * 64 * 64 + 8 * 32 * 32) / 1e6
    )
    assert by_name["neck.up"]["gflops"] == 0 and by_name["decode"]["convs"] == 0
    assert all(by_name[n]["gflops"] > 0 for n in ("stem", "stages.0", "context", "neck.td1", "head.box.0"))


def test_input_size_and_batch_change_every_signature():
    base = signatures(arch())
    bigger = signatures(arch(), 96)
    assert all(base[n] != bigger[n] for n in NAMES)
    batch2 = {u.name: u.signature for u in arch_units(arch(), 64, batch=2)[1]}
    assert all(base[n] != batch2[n] for n in NAMES)


def test_identical_blocks_share_one_signature_wherever_they_are():
    a = signatures(arch())
    b = signatures(arch(**{"head.cls_width": 32}))
    assert all(a[n] == b[n] for n in NAMES[:14])  # the backbone and neck did not change
    # the two nearest-neighbour upsamplings of one shape share an entry, of different shapes do not
    c = signatures(arch(**{"neck.up1.out": 32}))
    assert c["neck.up"] != c["neck.up#2"] and a["neck.up"] != a["neck.up#2"]


def _structure(path: Path) -> list:
    """What ONNX Runtime executes, without weight values: ops, attributes, tensor shapes."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.input, *model.graph.output, *model.graph.value_info]
    }
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    rows = []
    for node in model.graph.node:
        attrs = sorted(
            (a.name, str(onnx.helper.get_attribute_value(a)))
            for a in node.attribute
            if a.type != onnx.AttributeProto.TENSOR
        )
        rows.append(
            (
                node.op_type,
                attrs,
                [inits.get(i, shapes.get(i)) for i in node.input],
                [shapes.get(o) for o in node.output],
            )
        )
    return rows


def _export(unit, path: Path) -> Path:
    outs = [f"o{i}" for i in range(len(unit.description["outputs"]))]
    return export_module(unit.as_module(), unit.inputs, path, [f"i{i}" for i in range(len(unit.inputs))], outs)


def test_units_sharing_a_signature_export_identical_graphs(tmp_path, tiny_space_path):
    space = load_space(tiny_space_path)
    first: dict[str, object] = {}
    pairs = []
    for seed in range(4):
        _, units = arch_units(space.sample(seed).with_overrides(imgsz=64), 64, real=True, seed=seed)
        for unit in units:
            if unit.signature not in first:
                first[unit.signature] = unit
            elif len(pairs) < 8 and all(p[0].signature != unit.signature for p in pairs):
                pairs.append((first[unit.signature], unit))
    assert len(pairs) >= 5
    for i, (a, b) in enumerate(pairs):
        assert _structure(_export(a, tmp_path / f"{i}a.onnx")) == _structure(_export(b, tmp_path / f"{i}b.onnx"))


def test_a_replayed_unit_computes_what_it_computed_in_the_network(one_thread):
    model, units = arch_units(arch(), 64, real=True)
    by_name = {u.name: u for u in units}
    dec = by_name["decode"]
    assert len(dec.inputs) == 6
    boxes, scores = dec.as_module()(*dec.inputs)
    want_boxes, want_scores = decode([(dec.inputs[i], dec.inputs[i + 1]) for i in (0, 2, 4)], 8)
    assert torch.equal(boxes, want_boxes) and torch.equal(scores, want_scores)
    stage = by_name["stages.1"]
    (out,) = stage.as_module()(*stage.inputs)
    assert torch.allclose(out, model.stages[1](stage.inputs[0]))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # measured in deploy form
