"""The block registry: the only place the compiler learns which blocks exist.

A block is one small module that defines a pydantic parameter model and a build function, decorated
with `@register(name, kind, Params)`. Modules in `nasearch.nn.blocks` are discovered automatically,
so adding a block needs no edit anywhere else.

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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
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


BuildFn = Callable[[Any, BuildContext, Any], tuple[nn.Module, Any]]


@dataclass(frozen=True)
class BlockEntry:
    name: str
    kind: str
    params: type[Params]
    build: BuildFn
    doc: str


REGISTRY: dict[str, BlockEntry] = {}


def register(name: str, kind: Kind, params: type[Params]) -> Callable[[BuildFn], BuildFn]:
    """Register a block builder under `name` for the given kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown block kind {kind!r}")

    def deco(fn: BuildFn) -> BuildFn:
        if name in REGISTRY and REGISTRY[name].build is not fn:
            raise ValueError(f"block {name!r} registered twice")
        doc = (fn.__doc__ or params.__doc__ or "").strip().splitlines()
        REGISTRY[name] = BlockEntry(name, kind, params, fn, doc[0] if doc else "")
        return fn

    return deco


_loaded = False


def load_blocks() -> dict[str, BlockEntry]:
    """Import every module of `nasearch.nn.blocks` once, so their registrations run."""
    global _loaded
    if not _loaded:
        from nasearch.nn import blocks

        for info in pkgutil.iter_modules(blocks.__path__):
            importlib.import_module(f"{blocks.__name__}.{info.name}")
        _loaded = True
    return REGISTRY


def blocks_of_kind(kind: str) -> dict[str, BlockEntry]:
    return {k: v for k, v in load_blocks().items() if v.kind == kind}
