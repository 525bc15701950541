"""Pydantic validation with the project's error contract (one `error: FILE: path: …` line, exit 2)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from nasearch.errors import InputError, describe, foreign_mapping, unknown_key

M = TypeVar("M", bound=BaseModel)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def validate_model(model: type[M], data: Any, file: str) -> M:
    """`model.model_validate(data)`, turning the first pydantic error into an InputError."""
    if not isinstance(data, dict):
        raise InputError(file, "<root>", "a mapping", describe(data))
    if foreign_mapping(data, model.model_fields):
        raise InputError(
            file,
            "<root>",
            f"a {model.__name__} mapping (keys such as {', '.join(list(model.model_fields)[:4])})",
            f"a mapping with none of those keys ({len(data)} others, not shown)",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err.get("loc", ()))
        path = _loc(loc)
        if err.get("type") == "extra_forbidden":
            parent: type[BaseModel] | None = model
            for part in loc[:-1]:
                field = parent.model_fields.get(str(part)) if parent else None
                ann = field.annotation if field else None
                parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
            known = list(parent.model_fields) if parent else []
            name, found = unknown_key(loc[-1], known)
            raise InputError(file, _loc((*loc[:-1], name)), f"one of the keys {', '.join(known)}", found) from None
        if err.get("type") == "missing":
            raise InputError(file, path, "a value (required)", "nothing") from None
        msg = str(err.get("msg", "a valid value")).removeprefix("Input should be ").removeprefix("Value error, ")
        raise InputError(file, path, msg, describe(err.get("input"))) from None
