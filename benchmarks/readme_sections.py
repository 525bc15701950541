"""The measured sections of a README: the text between `<!-- TAG:start -->` and `<!-- TAG:end -->`, written by a
benchmark script and read back by its report. The markers must already be in the file, where the section belongs
(a section appended wherever the file happens to end would land under the wrong heading); writes are atomic, so
a killed run leaves the previous file."""

from __future__ import annotations

from pathlib import Path

from nasearch import atomic
from nasearch.errors import InputError, exit_bad_input


def markers(tag: str) -> tuple[str, str]:
    return f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"


def _require(path: Path, tag: str) -> str:
    start, end = markers(tag)
    text = path.read_text() if path.is_file() else ""
    if start not in text or end not in text.split(start, 1)[1]:
        exit_bad_input(InputError(path, tag, f"the markers {start} and {end}", "none"))
    return text


def read_section(path: Path, tag: str) -> str:
    start, end = markers(tag)
    return _require(path, tag).split(start, 1)[1].split(end, 1)[0]


def write_section(path: Path, tag: str, body: str) -> None:
    start, end = markers(tag)
    head, rest = _require(path, tag).split(start, 1)
    atomic.write_text(path, f"{head}{start}\n{body}\n{end}{rest.split(end, 1)[1]}")
