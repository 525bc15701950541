"""Data shipped inside the package: presets, search spaces, experiments and the fitted T4 model.

The files live here, under `nasearch/resources/`, so that a wheel carries them and `importlib.resources`
finds them wherever the package is installed; the top-level `search_spaces/`, `experiments/` and
`latency_db/` of a checkout are symlinks to these folders, so the documented paths keep working and each
file exists once.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def shipped(*parts: str) -> Path:
    """A shipped file or folder (e.g. `shipped("search_spaces", "presets")`), as a file-system path.

    Installed packages are unpacked on disk (wheels, editable installs, checkouts), so the resource root is a
    real directory; a zipped install is refused loudly rather than read half-way."""
    root = resources.files(__name__)
    if not isinstance(root, Path):
        raise RuntimeError(f"nasearch's shipped data must be on the file system, found {type(root).__name__}")
    return root.joinpath(*parts)


def resolve_named(ref: str | Path, directory: Path) -> Path:
    """An argument that is a file path, or the bare name of a YAML file in `directory` (a preset, a shipped
    space or experiment): the path when it exists or looks like one, else `directory/NAME.yaml` if that exists."""
    p = Path(ref)
    if p.exists() or p.suffix in (".yaml", ".yml") or os.sep in str(ref):
        return p
    candidate = directory / f"{ref}.yaml"
    return candidate if candidate.exists() else p
