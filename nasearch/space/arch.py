"""Concrete architectures: loading, dumping, content hashing, and presets by name."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasearch import atomic, yamlio
from nasearch.envpaths import env_path
from nasearch.errors import InputError
from nasearch.resources import resolve_named, shipped
from nasearch.space.schema import validate_arch

PRESETS_ENV = "NASEARCH_PRESETS"


def presets_dir() -> Path:
    return env_path(PRESETS_ENV, shipped("search_spaces", "presets"))


def arch_hash(data: dict) -> str:
    """Stable content hash: every field but the name, canonical JSON, sha256 (16 hex digits)."""
    body = {k: v for k, v in data.items() if k != "name"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Architecture:
    """A validated, normalized architecture (every default filled in)."""

    data: dict[str, Any]
    source: str = "<memory>"
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", arch_hash(self.data))

    @property
    def name(self) -> str:
        return str(self.data.get("name", "arch"))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<memory>") -> Architecture:
        return cls(validate_arch(data, source), source)

    def with_overrides(self, **top: Any) -> Architecture:
        """The same architecture with top-level fields replaced (e.g. nc, imgsz)."""
        data = {**self.data, **{k: v for k, v in top.items() if v is not None}}
        return Architecture.from_dict(data, self.source)

    def dumps(self) -> str:
        return yamlio.dumps(self.data)

    def save(self, path: str | Path) -> Path:
        """Write atomically (a temp file then rename), so a kill never leaves half a file."""
        return atomic.write_text(path, self.dumps())


def resolve_arch_path(ref: str | Path) -> Path:
    """An architecture argument is a file path or the name of a preset (e.g. `yolov8n`)."""
    return resolve_named(ref, presets_dir())


def load_arch(ref: str | Path) -> Architecture:
    path = resolve_arch_path(ref)
    data = yamlio.load_mapping(path)
    return Architecture.from_dict(data, str(path))


def list_presets(directory: Path | None = None) -> dict[str, Path]:
    d = directory or presets_dir()
    return {p.stem: p for p in sorted(d.glob("*.yaml"))} if d.is_dir() else {}


def load_presets(directory: Path | None = None) -> dict[str, Architecture]:
    out = {}
    for name, path in list_presets(directory).items():
        try:
            out[name] = load_arch(path)
        except InputError:
            continue
    return out
