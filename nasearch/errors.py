"""Errors that reach the user.

Bad input is an `InputError`: the CLI prints its one line and exits 2, never a traceback.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):[^@/\s]*@")


def masked(text: str) -> str:
    """`text` with the password of every URL in it (`scheme://user:secret@host`) shown as `***`."""
    return _CREDENTIALS.sub(lambda m: f"{m['head']}:***@", text)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The `file` of an error about a value given as an option rather than read from a file: library code names
# the field (`imgsz`), and the command line shows it as its flag (`--imgsz`, see `nasearch.cli.common`).
OPTION = "<option>"


class InputError(Exception):
    """A user-supplied file or value is malformed; reported as `error: FILE: path: expected …, found …`."""

    def __init__(self, file: str | Path | None, path: str, expected: str, found: str) -> None:
        self.file = str(file) if file is not None else "<input>"
        self.path = path or "<root>"
        self.expected = expected
        self.found = found
        super().__init__(self.line())

    def line(self) -> str:
        found = " ".join(self.found.split())
        return masked(f"error: {self.file}: {self.path}: expected {self.expected}, found {found}")

    def with_file(self, file: str | Path) -> InputError:
        """The same error, attributed to a file (for errors raised before the file was known)."""
        return InputError(file, self.path, self.expected, self.found)


def exit_bad_input(error: InputError) -> NoReturn:
    """For scripts outside the CLI (the benchmarks): the error's one line on stderr, exit code 2."""
    print(error.line(), file=sys.stderr)
    raise SystemExit(2)


def describe(value: object) -> str:
    """How a found value is shown in an error line: its type and a short repr."""
    kind = {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
    if isinstance(value, dict | list):
        return f"{kind} {_short(value)}"
    return f"{kind} {_short(value)}"


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,40}")


def shown_key(key: object) -> str | None:
    """A mapping key as an error may show it: only when it looks like a field name. Any other key is text of a
    file that is probably no document of ours (`space: /etc/shadow` parses as a mapping of its lines)."""
    return key if isinstance(key, str) and _FIELD_NAME.fullmatch(key) else None


def unknown_key(key: object, known: Iterable[str]) -> tuple[str, str]:
    """(how the key appears in the error's path, the `found` text) for a key that is not a field."""
    name = shown_key(key)
    if name is None:
        return "<key>", "a key that is no field name (not shown)"
    return name, f"unknown key {name!r}{did_you_mean(name, known)}"


def foreign_mapping(node: dict, known: Iterable[str]) -> bool:
    """A non-empty mapping none of whose keys is a field: another kind of file, not a mistyped one."""
    names = set(known)
    return bool(node) and not any(isinstance(k, str) and k in names for k in node)


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix when a close match exists."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
