"""Property: every architecture the schema can express either builds and runs, or the validator refuses it
with one line naming the field. Architectures are drawn from the block registry's own parameter models
(bounds included, so edge values come up), built and run on the meta device (shapes only, nothing allocated).
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

import annotated_types
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from torch import nn

from nasearch.errors import InputError
from nasearch.nn.registry import blocks_of_kind
from nasearch.space import Architecture, build_model, load_space
from tests.conftest import SPACES


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in metadata:
        for name in ("ge", "gt", "le", "lt"):
            if getattr(m, name, None) is not None:
                out[name] = getattr(m, name)
        if isinstance(m, annotated_types.Interval):
            out.update({k: v for k, v in vars(m).items() if v is not None})
    return out


def _leaf(ann: Any, metadata: list[Any]) -> st.SearchStrategy:
    while typing.get_origin(ann) is Annotated:
        args = typing.get_args(ann)
        ann, metadata = args[0], [*metadata, *args[1:]]
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(ann) if a is not type(None)]
        return st.one_of(st.none(), *(_leaf(a, metadata) for a in arms))
    if origin is Literal:
        return st.sampled_from(typing.get_args(ann))
    if origin is list:
        return st.lists(_leaf(typing.get_args(ann)[0], []), min_size=1, max_size=4)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return _params(ann)
    b = _bounds(metadata)
    if ann is bool:
        return st.booleans()
    if ann is int:
        lo, hi = b.get("ge", b.get("gt", 0) + 1), b.get("le", b.get("lt", 10_000) - 1)
        # the low edge (where widths round to 0) and small values; thousands of channels are legal but only
        # slow the meta forward down (seconds per model), so the high edge is capped
        return st.one_of(st.sampled_from([lo, min(hi, 256)]), st.integers(lo, min(hi, lo + 64)))
    if ann is float:
        lo, hi = b.get("ge", b.get("gt", 0.0)), b.get("le", b.get("lt", 1.0))
        return st.one_of(
            st.sampled_from([hi, lo + 1e-6, 0.01, 0.05]),
            # no subnormals: a library loaded earlier in the process may set flush-to-zero, which Hypothesis refuses
            st.floats(lo, hi, exclude_min="gt" in b, exclude_max="lt" in b, allow_subnormal=False),
        )
    if ann is str:
        return st.text(max_size=5)
    raise AssertionError(f"no strategy for {ann!r}")


def _params(model: type[BaseModel]) -> st.SearchStrategy:
    fields = {}
    for name, info in model.model_fields.items():
        s = _leaf(info.annotation, list(info.metadata))
        fields[name] = s if info.is_required() else st.one_of(st.just(None), s)
    return st.fixed_dictionaries(fields).map(lambda d: {k: v for k, v in d.items() if v is not None})


def _block(kind: str) -> st.SearchStrategy:
    known = blocks_of_kind(kind)
    return st.sampled_from(sorted(known)).flatmap(
        lambda name: _params(known[name].params).map(lambda p: {"type": name, **p})
    )


ARCHS = st.fixed_dictionaries(
    {
        "nc": st.sampled_from([1, 3, 80]),
        "imgsz": st.sampled_from([32, 64, 96, 4096]),
        "reg_max": st.sampled_from([0, 1, 16, 64]),
        "backbone": st.fixed_dictionaries(
            {
                "stem": _block("stem"),
                "stages": st.lists(_block("stage"), min_size=4, max_size=4),
                "context": _block("context"),
            }
        ),
        "neck": _block("neck"),
        "head": _block("head"),
    }
)


def _builds_and_runs(arch: Architecture) -> None:
    with torch.device("meta"):
        model = build_model(arch).eval()
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            assert m.in_channels >= 1 and m.out_channels >= 1, f"{name} has {m.in_channels}->{m.out_channels}"
    size = arch.data["imgsz"]
    with torch.no_grad():
        boxes, scores = model(torch.empty(1, 3, size, size, device="meta"))
    assert boxes.shape[-1] == 4 and scores.shape[-1] == arch.data["nc"]


# no shrinking: a meta build per example makes it take minutes; the failing example is printed as drawn
@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=ARCHS)
def test_every_schema_architecture_builds_or_is_refused_naming_a_field(data):
    try:
        arch = Architecture.from_dict(data, "drawn.yaml")
    except InputError as err:
        line = err.line()
        assert line.startswith("error: drawn.yaml: ") and "\n" not in line
        assert err.path != "<root>" or err.found, line
        return
    _builds_and_runs(arch)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("stem_k", 4, "backbone.stem.k"),
        ("sppf_k", 4, "backbone.context.k"),
        ("c2f_e", 0.01, "backbone.stages[1].e"),
        ("pan_e", 0.01, "neck.e"),
        ("psa_e", 0.01, "backbone.context.psa_e"),  # found by the property test: a ZeroDivisionError in attention
    ],
)
def test_known_crashes_are_refused_naming_the_field(field, value, needle):
    """Each once ended in a torch traceback (issue 17): now a refusal naming the field."""
    from nasearch import yamlio
    from tests.test_malformed_inputs import TINY_HEAD

    data = yamlio.loads(TINY_HEAD)
    if field == "stem_k":
        data["backbone"]["stem"]["k"] = value
    elif field == "sppf_k":
        data["backbone"]["context"]["k"] = value
    elif field == "psa_e":
        data["backbone"]["context"] = {"type": "sppf_c2psa", "out": 32, "psa_e": value}
    elif field == "c2f_e":
        data["backbone"]["stages"][1]["e"] = value
    else:
        data["neck"]["e"] = value
    with pytest.raises(InputError) as info:
        Architecture.from_dict(data, "a.yaml")
    assert needle in info.value.line(), info.value.line()


SHIPPED_SPACES = sorted(SPACES.glob("*.yaml"))


@pytest.mark.parametrize("space_file", SHIPPED_SPACES, ids=lambda p: p.stem)
@settings(
    max_examples=2,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**31 - 1))
def test_every_architecture_a_shipped_space_samples_builds_and_runs(space_file, seed):
    _builds_and_runs(load_space(space_file).sample(seed))
