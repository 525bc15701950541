"""The architecture schema and the walker that validates (and normalizes) architectures and spaces.

One walker serves both: in a space any field may be a decision (`choice` / `range`), in an
architecture none may. Block parameters come from the registry's pydantic models (the blocks'
declarations in `nasearch.nn.specs`, which need no torch), so a new block needs no edit here. The
walker fills defaults, so equal architectures have equal data and hashes.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from nasearch.errors import InputError, describe, did_you_mean, foreign_mapping, unknown_key
from nasearch.nn.fields import Act
from nasearch.nn.registry import Params, blocks_of_kind
from nasearch.space import decisions as dec
from nasearch.validation import Imgsz


@dataclass(frozen=True)
class BlockRef:
    """Annotation marker: the field holds a registered block of this kind (`{type: NAME, ...params}`)."""

    kind: str


@dataclass(frozen=True)
class Length:
    """Annotation marker: a list field's allowed length."""

    min: int
    max: int


class BackboneSpec(Params):
    stem: Annotated[dict, BlockRef("stem")]
    stages: Annotated[list[dict], BlockRef("stage"), Length(4, 4)]
    context: Annotated[dict, BlockRef("context")]


class ArchSpec(Params):
    """Top level of an architecture file (a space file adds `description` and `constraints`)."""

    name: str = "arch"
    nc: Annotated[int, Field(ge=1, le=10000)] = 80
    imgsz: Imgsz = 640
    reg_max: Annotated[int, Field(ge=0, le=64)] = 16
    act: Act = "silu"
    bn_eps: Annotated[float, Field(gt=0, lt=1)] = 1e-3
    bn_momentum: Annotated[float, Field(gt=0, lt=1)] = 0.03
    backbone: BackboneSpec
    neck: Annotated[dict, BlockRef("neck")]
    head: Annotated[dict, BlockRef("head")]


SPACE_ONLY_KEYS = ("description", "constraints")


@lru_cache(maxsize=1024)
def _adapter(ann: Any) -> TypeAdapter:
    return TypeAdapter(ann)


def _split_annotated(ann: Any, metadata: tuple) -> tuple[Any, tuple]:
    while typing.get_origin(ann) is Annotated:
        args = typing.get_args(ann)
        ann, metadata = args[0], (*metadata, *args[1:])
    return ann, metadata


def _is_params(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


class Walker:
    """Validate a tree against an annotation; returns the normalized copy (defaults filled)."""

    def __init__(self, file: str, allow_decisions: bool) -> None:
        self.file = file
        self.allow_decisions = allow_decisions

    def fail(self, path: str, expected: str, found: str) -> InputError:
        return InputError(self.file, path, expected, found)

    def walk(self, node: Any, ann: Any, path: str, metadata: tuple = ()) -> Any:
        ann, metadata = _split_annotated(ann, metadata)
        if dec.is_decision(node):
            if not self.allow_decisions:
                raise self.fail(path, "a fixed value in an architecture (decisions belong in a space)", describe(node))
            return self._decision(node, ann, path, metadata)
        if isinstance(node, dict) and ("choice" in node or "range" in node) and len(node) <= 3:
            dec.check_decision_shape(node, path, self.file)  # malformed decision: precise message
        ref = next((m for m in metadata if isinstance(m, BlockRef)), None)
        length = next((m for m in metadata if isinstance(m, Length)), None)
        origin = typing.get_origin(ann)
        if origin is list:
            return self._list(node, typing.get_args(ann)[0], path, metadata, ref, length)
        if ref is not None:
            return self._block(node, ref, path)
        if _is_params(ann):
            return self._model(node, ann, path)
        if origin in (typing.Union, types.UnionType):
            arms = [a for a in typing.get_args(ann) if a is not type(None)]
            if node is None:
                return None
            return self.walk(node, arms[0], path, metadata)
        return self._leaf(node, ann, path, metadata)

    def _decision(self, node: dict, ann: Any, path: str, metadata: tuple) -> dict:
        dec.check_decision_shape(node, path, self.file)
        if "choice" in node:
            return {
                "choice": [self.walk(opt, ann, f"{path}.choice[{i}]", metadata) for i, opt in enumerate(node["choice"])]
            }
        lo, hi = node["range"]
        out: dict[str, Any] = {
            "range": [
                self._leaf(lo, ann, f"{path}.range[0]", metadata),
                self._leaf(hi, ann, f"{path}.range[1]", metadata),
            ]
        }
        if "step" in node:
            out["step"] = node["step"]
        base = typing.get_origin(ann) or ann
        if base not in (int, float):
            kind = getattr(ann, "__name__", ann)
            raise self.fail(path, "a range only on a numeric field", f"a range on a {kind} field")
        bounds = (lo, hi, node.get("step", 1))
        if base is int and not all(isinstance(v, int) and not isinstance(v, bool) for v in bounds):
            raise self.fail(path, "integer range bounds and step on an integer field", describe(node))
        return out

    def _list(
        self, node: Any, item: Any, path: str, metadata: tuple, ref: BlockRef | None, length: Length | None
    ) -> list:
        if not isinstance(node, list):
            raise self.fail(path, "a list", describe(node))
        if length and not (length.min <= len(node) <= length.max):
            want = str(length.min) if length.min == length.max else f"{length.min}..{length.max}"
            raise self.fail(path, f"a list of {want} items", f"{len(node)} items")
        item_meta = tuple(m for m in metadata if isinstance(m, BlockRef))
        return [self.walk(v, item, f"{path}[{i}]", item_meta) for i, v in enumerate(node)]

    def _block(self, node: Any, ref: BlockRef, path: str) -> dict:
        known = blocks_of_kind(ref.kind)
        if not isinstance(node, dict):
            raise self.fail(path, f"a {ref.kind} block mapping with a 'type'", describe(node))
        if "type" not in node:
            raise self.fail(f"{path}.type", f"a {ref.kind} block type (one of {', '.join(sorted(known))})", "nothing")
        kind = node["type"]
        if dec.is_decision(kind):
            raise self.fail(
                f"{path}.type",
                "a fixed block type (for a choice of blocks, make the whole block a `choice` of mappings)",
                describe(kind),
            )
        if not isinstance(kind, str) or kind not in known:
            hint = did_you_mean(str(kind), known) if isinstance(kind, str) else ""
            raise self.fail(
                f"{path}.type",
                f"a {ref.kind} block type (one of {', '.join(sorted(known))})",
                f"{describe(kind)}{hint}",
            )
        rest = {k: v for k, v in node.items() if k != "type"}
        return {"type": kind, **self._model(rest, known[kind].params, path)}

    def _model(self, node: Any, model: type[BaseModel], path: str) -> dict:
        if not isinstance(node, dict):
            raise self.fail(path, "a mapping", describe(node))
        fields = model.model_fields
        if not path and foreign_mapping(node, fields):
            raise self.fail(
                "<root>",
                "an architecture or a search space (keys such as backbone, neck, head)",
                f"a mapping with none of those keys ({len(node)} others, not shown)",
            )
        for key in node:
            if not isinstance(key, str) or key not in fields:
                name, found = unknown_key(key, fields)
                raise self.fail(_join(path, name), f"one of the keys {', '.join(fields)}", found)
        out: dict[str, Any] = {}
        for name, info in fields.items():
            sub = _join(path, name)
            if name in node:
                value = self.walk(node[name], info.annotation, sub, tuple(info.metadata))
            elif info.is_required():
                raise self.fail(sub, "a value (required)", "nothing")
            else:
                default = info.get_default(call_default_factory=True)
                value = default.model_dump() if isinstance(default, BaseModel) else default
            if value is not None or info.is_required():
                out[name] = value  # optional fields left unset stay absent: one canonical form
        if issubclass(model, Params) and not _has_decision(out):
            for field, expected, found in model.model_validate(out).problems():
                raise self.fail(_join(path, field), expected, found)
        return out

    def _leaf(self, node: Any, ann: Any, path: str, metadata: tuple) -> Any:
        if ann is float and isinstance(node, int) and not isinstance(node, bool):
            node = float(node)
        if isinstance(node, dict | list) and ann in (int, float, str, bool):
            raise self.fail(path, _type_name(ann), describe(node))
        try:
            value = _adapter(Annotated[ann, *metadata] if metadata else ann).validate_python(node, strict=True)
        except ValidationError as exc:
            err = exc.errors()[0]
            msg = str(err.get("msg", "a valid value")).removeprefix("Input should be ").removeprefix("Value error, ")
            raise self.fail(path, msg, describe(node)) from None
        return value


def _has_decision(node: Any) -> bool:
    if dec.is_decision(node):
        return True
    if isinstance(node, dict):
        return any(_has_decision(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_decision(v) for v in node)
    return False


def _type_name(ann: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}.get(ann, str(ann))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_arch(data: Any, file: str) -> dict:
    """Validate a concrete architecture; return its normalized data."""
    if not isinstance(data, dict):
        raise InputError(file, "<root>", "a mapping (an architecture)", describe(data))
    extra = [k for k in data if k in SPACE_ONLY_KEYS]
    if extra:
        raise InputError(file, extra[0], "an architecture (no space-only keys)", f"key {extra[0]!r}")
    return Walker(file, allow_decisions=False).walk(data, ArchSpec, "")


def validate_space_tree(data: dict, file: str) -> dict:
    """Validate the architecture part of a space (decisions allowed); return it normalized."""
    body = {k: v for k, v in data.items() if k not in SPACE_ONLY_KEYS}
    return Walker(file, allow_decisions=True).walk(body, ArchSpec, "")
