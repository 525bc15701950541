"""The block registry: the only place the DSL and the compiler learn which blocks exist.

A block is declared once, without torch, in a module of `nasearch.nn.specs`: its pydantic parameter model
(fields, bounds, validators) decorated with `@declare(name, kind)`. Its torch module lives in the module of
the same name in `nasearch.nn.blocks`, whose build function attaches to the declaration with
`@register(name)` and reads its parameters from the declared model. Both packages are discovered
automatically, so adding a block needs no edit anywhere else. The DSL (validating, sampling and describing
spaces) reads the declarations only, so it never imports torch; `load_blocks()` imports the torch side.

Kinds and what `build(params, ctx, c_in)` receives and returns:
- ``stem``, ``stage``, ``context``: ``c_in: int`` -> ``(module, c_out: int)``; tensor in, tensor out.
- ``neck``: ``c_in: list[int]`` (every backbone level, strides 4..32, the last after the context
  block) -> ``(module, list[int])``; list of tensors in, [P3, P4, P5] out.
- ``head``: ``c_in: list[int]`` -> ``(module, None)``; the module maps [P3, P4, P5] to a list of
  ``(box_logits [B, 4*bins, H, W], cls_logits [B, nc, H, W])`` and has an int attribute ``bins``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from torch import nn

Kind = Literal["stem", "stage", "context", "neck", "head"]
KINDS: tuple[str, ...] = ("stem", "stage", "context", "neck", "head")


class Params(BaseModel):
    """Base of every block's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def problems(self) -> list[tuple[str, str, str]]:
        """What the fields' own bounds cannot see, as (field, expected, found); the validator reports the first.

        By default: a hidden width int(out · e) must keep at least one channel (the block's own `out`, or
        the `out` of each of its levels, e.g. a neck's `up1`)."""
        e = getattr(self, "e", None)
        if not isinstance(e, float):
            return []
        outs = (
            {"out": self.out}
            if isinstance(getattr(self, "out", None), int)
            else {
                f"{name}.out": level.out
                for name in type(self).model_fields
                if isinstance(level := getattr(self, name), Params) and isinstance(getattr(level, "out", None), int)
            }
        )
        for name, out in outs.items():
            if int(out * e) < 1:
                return [
                    (
                        "e",
                        f"e >= {1 / out:.3g}, so that int({name} x e) keeps at least one channel",
                        f"{e:g} (int({out} x {e:g}) = 0 channels)",
                    )
                ]
        return []


@dataclass(frozen=True)
class BuildContext:
    """Architecture-wide settings every block may need."""

    act: str = "silu"
    bn_eps: float = 1e-3
    bn_momentum: float = 0.03
    nc: int = 80
    reg_max: int = 16


BuildFn = Callable[[Any, BuildContext, Any], "tuple[nn.Module, Any]"]


@dataclass(frozen=True)
class BlockSpec:
    """A declared block: what the DSL validates, samples and describes (no torch)."""

    name: str
    kind: str
    params: type[Params]


@dataclass(frozen=True)
class BlockEntry(BlockSpec):
    """A declared block with its torch build function attached."""

    build: BuildFn
    doc: str


SPECS: dict[str, BlockSpec] = {}
REGISTRY: dict[str, BlockEntry] = {}

ParamsT = TypeVar("ParamsT", bound=type[Params])


def declare(name: str, kind: Kind) -> Callable[[ParamsT], ParamsT]:
    """Declare a block `name` of the given kind whose parameters the decorated model describes.

    One model may be declared under several names (e.g. two heads that share their parameters)."""
    if kind not in KINDS:
        raise ValueError(f"unknown block kind {kind!r}")

    def deco(params: ParamsT) -> ParamsT:
        if name in SPECS and SPECS[name].params is not params:
            raise ValueError(f"block {name!r} declared twice")
        SPECS[name] = BlockSpec(name, kind, params)
        return params

    return deco


def register(name: str) -> Callable[[BuildFn], BuildFn]:
    """Attach a torch build function to the block declared as `name`."""

    def deco(fn: BuildFn) -> BuildFn:
        spec = load_specs().get(name)
        if spec is None:
            raise ValueError(f"block {name!r} is not declared in nasearch.nn.specs")
        if name in REGISTRY and REGISTRY[name].build is not fn:
            raise ValueError(f"block {name!r} registered twice")
        doc = (fn.__doc__ or spec.params.__doc__ or "").strip().splitlines()
        REGISTRY[name] = BlockEntry(name, spec.kind, spec.params, fn, doc[0] if doc else "")
        return fn

    return deco


def _import_all(package: ModuleType) -> None:
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


_loaded: set[str] = set()


def load_specs() -> dict[str, BlockSpec]:
    """Import every module of `nasearch.nn.specs` once, so their declarations run (no torch)."""
    if "specs" not in _loaded:
        from nasearch.nn import specs

        _import_all(specs)
        _loaded.add("specs")
    return SPECS


def load_blocks() -> dict[str, BlockEntry]:
    """Import every module of `nasearch.nn.blocks` once (torch), so every declared block gets its builder."""
    if "blocks" not in _loaded:
        load_specs()
        from nasearch.nn import blocks

        _import_all(blocks)
        missing = sorted(set(SPECS) - set(REGISTRY))
        if missing:
            raise RuntimeError(f"declared blocks without a build function in nasearch.nn.blocks: {missing}")
        _loaded.add("blocks")
    return REGISTRY


def blocks_of_kind(kind: str) -> dict[str, BlockSpec]:
    """The declared blocks of one kind (declarations only: no torch)."""
    return {k: v for k, v in load_specs().items() if v.kind == kind}
