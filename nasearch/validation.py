"""Validation with the project's error contract (one `error: FILE: path: …` line, exit 2): pydantic models,
and each rule that flags and files share written once (`Imgsz`, `check_imgsz`, `check_positive`)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from nasearch.errors import OPTION, InputError, describe, foreign_mapping, unknown_key

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
        raise input_error(exc, model, file) from None


def input_error(exc: ValidationError, model: type[BaseModel], file: str, prefix: str = "") -> InputError:
    """The InputError for the first error of validating `model` (its path after `prefix`, when given)."""
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))

    def where(parts: tuple) -> str:
        path = _loc(parts)
        if not prefix:
            return path
        return prefix if path == "<root>" else prefix + (path if path.startswith("[") else f".{path}")

    if err.get("type") == "extra_forbidden":
        parent: type[BaseModel] | None = model
        for part in loc[:-1]:
            field = parent.model_fields.get(str(part)) if parent else None
            ann = field.annotation if field else None
            parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        known = list(parent.model_fields) if parent else []
        name, found = unknown_key(loc[-1], known)
        return InputError(file, where((*loc[:-1], name)), f"one of the keys {', '.join(known)}", found)
    if err.get("type") == "missing":
        return InputError(file, where(loc), "a value (required)", "nothing")
    msg = str(err.get("msg", "a valid value")).removeprefix("Input should be ").removeprefix("Value error, ")
    return InputError(file, where(loc), msg, describe(err.get("input")))


IMGSZ_RULE = "a multiple of 32, at least 32"
Imgsz = Annotated[int, Field(ge=32, le=4096, multiple_of=32)]  # the same rule inside files (pydantic's words)


def check_imgsz(imgsz: int | None) -> None:
    """An input size the detector takes (strides go up to 32). The error names the field; the command line
    shows it as `--imgsz` (`nasearch.cli.common.as_flag`)."""
    if imgsz is not None and (imgsz < 32 or imgsz % 32):
        raise InputError(OPTION, "imgsz", IMGSZ_RULE, str(imgsz))


def check_positive(value: int | None, name: str, field: str | None = None) -> None:
    """A count of at least 1. `name` is a field (`batch`: library code, shown as `--batch` by the command line)
    or a flag the command itself names (`--max-archs`); `field` overrides the path of the error."""
    if value is not None and value < 1:
        source, path = (name, field or name.lstrip("-")) if name.startswith("--") else (OPTION, field or name)
        raise InputError(source, path, "a positive integer", str(value))
