"""Folders and files named by environment variables (`NASEARCH_CACHE`, `NASEARCH_RUN`, …).

One reader for all of them, so that they agree: an empty or blank value counts as unset (a shell's
`export NASEARCH_CACHE=` must not send a data set into the working directory), and `~` is expanded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import overload


@overload
def env_path(name: str, default: str | Path) -> Path: ...
@overload
def env_path(name: str, default: None = None) -> Path | None: ...
def env_path(name: str, default: str | Path | None = None) -> Path | None:
    """The path in environment variable `name`, else `default` (None when neither is set)."""
    raw = os.environ.get(name, "").strip()
    if raw:
        return Path(raw).expanduser()
    return None if default is None else Path(default)


def user_cache(*parts: str) -> Path:
    """A folder under the user's cache for nasearch (`~/.cache/nasearch/...`)."""
    return Path.home().joinpath(".cache", "nasearch", *parts)
