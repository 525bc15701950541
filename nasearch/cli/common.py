"""What every command shares: the exit-code contract and JSON output.

Exit 0 done; 2 bad input (one `error: FILE: path: expected …, found …` line, no traceback);
1 internal failure (message plus a hint; traceback only with --debug).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from nasearch.errors import OPTION, InputError, masked

F = TypeVar("F", bound=Callable[..., Any])

DEBUG_ENV = "NASEARCH_DEBUG"


def guarded(fn: F) -> F:
    """Wrap a command so bad input exits 2 with one line and internal failures exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            print(as_flag(exc).line(), file=sys.stderr)
            raise typer.Exit(2) from None
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except Exception as exc:
            path_error = location_error(exc)
            if path_error is not None:
                if os.environ.get(DEBUG_ENV):
                    traceback.print_exc()
                print(path_error.line(), file=sys.stderr)
                raise typer.Exit(2) from None
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            print(masked(f"internal error: {type(exc).__name__}: {first_line(exc)}"), file=sys.stderr)
            print("hint: rerun with --debug for the traceback, and report it if the input looks right", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def as_flag(exc: InputError) -> InputError:
    """An error about an option's value (`file` is `OPTION`, `path` the field) named by its flag:
    field `max_drop` is flag `--max-drop`."""
    if exc.file != OPTION:
        return exc
    return InputError("--" + exc.path.replace("_", "-"), exc.path, exc.expected, exc.found)


# errors that say the user pointed at a location that cannot be used: read-only, not a directory, no access...
LOCATION_ERRNOS = {
    errno.EROFS: "a read-only file system",
    errno.EACCES: "no permission",
    errno.EPERM: "an operation not permitted there",
    errno.ENOTDIR: "a path through a file",
    errno.EEXIST: "an existing file",
    errno.EISDIR: "a directory",
    errno.ENOENT: "no such path",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota exceeded",
    errno.ENAMETOOLONG: "a name too long",
}


def location_error(exc: BaseException) -> InputError | None:
    """An OSError about a path the user gave (an --out on a read-only mount, under a file, ...) as bad input."""
    if not isinstance(exc, OSError) or exc.errno not in LOCATION_ERRNOS or exc.filename is None:
        return None
    return InputError(
        os.fsdecode(exc.filename), "<path>", "a location this command can read or write", LOCATION_ERRNOS[exc.errno]
    )


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message cut to its first line: torch's can span pages (graphs, stack dumps)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def emit_json(doc: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, default=_default) + "\n")
    sys.stdout.flush()


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def log(msg: str) -> None:
    """Progress and logs go to stderr so --json output stays clean."""
    print(msg, file=sys.stderr)
