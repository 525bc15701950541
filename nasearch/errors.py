"""Errors that reach the user.

Bad input is an `InputError`: the CLI prints its one line and exits 2, never a traceback.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):[^@/\s]*@")


def masked(text: str) -> str:
    """`text` with the password of every URL in it (`scheme://user:secret@host`) shown as `***`."""
    return _CREDENTIALS.sub(lambda m: f"{m['head']}:***@", text)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def describe(value: object) -> str:
    """How a found value is shown in an error line: its type and a short repr."""
    kind = {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
    if isinstance(value, dict | list):
        return f"{kind} {_short(value)}"
    return f"{kind} {_short(value)}"


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix when a close match exists."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
