"""The block registry: declarations (`nasearch.nn.specs`, no torch) and the torch builders attached to them."""

from __future__ import annotations

import pytest

from nasearch.nn.registry import KINDS, Params, declare, load_blocks, load_specs, register


def test_every_declared_block_has_a_builder_and_every_builder_a_declaration() -> None:
    specs, blocks = load_specs(), load_blocks()
    assert set(blocks) == set(specs)
    for name, entry in blocks.items():
        assert (entry.kind, entry.params) == (specs[name].kind, specs[name].params), name
    assert {s.kind for s in specs.values()} == set(KINDS)


def test_a_builder_for_an_undeclared_block_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'no_such_block' is not declared in nasearch\.nn\.specs"):
        register("no_such_block")(lambda p, ctx, c_in: (None, c_in))
    assert "no_such_block" not in load_blocks()


def test_a_name_declared_with_a_second_model_is_refused() -> None:
    class Other(Params):
        out: int

    with pytest.raises(ValueError, match="'c2f_stage' declared twice"):
        declare("c2f_stage", "stage")(Other)
    assert load_specs()["c2f_stage"].params is not Other
