"""What every command shares: the exit-code contract and JSON output.

Exit 0 done; 2 bad input (one `error: FILE: path: expected …, found …` line, no traceback);
1 internal failure (message plus a hint; traceback only with --debug).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from nasearch.errors import InputError, masked

F = TypeVar("F", bound=Callable[..., Any])

DEBUG_ENV = "NASEARCH_DEBUG"


def guarded(fn: F) -> F:
    """Wrap a command so bad input exits 2 with one line and internal failures exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            print(exc.line(), file=sys.stderr)
            raise typer.Exit(2) from None
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            print(masked(f"internal error: {type(exc).__name__}: {exc}"), file=sys.stderr)
            print("hint: rerun with --debug for the traceback, and report it if the input looks right",
                  file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


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
