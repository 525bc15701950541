"""Safe YAML reading with limits, shared by every input file.

Only `yaml.SafeLoader` is used; anchors/aliases are allowed but the expanded document is capped, so an
alias bomb is rejected quickly, and so are documents nested too deep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nasearch.errors import InputError

MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 48


def _check_size(obj: Any, file: str) -> None:
    """Walk the loaded object, counting nodes as if aliases were expanded; stop at the caps."""
    count = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise InputError(file, "<root>", f"at most {MAX_NODES} nodes", "more (an alias bomb?)")
        if depth > MAX_DEPTH:
            raise InputError(file, "<root>", f"nesting at most {MAX_DEPTH} deep", "deeper nesting")
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str | int | float | bool):
                    raise InputError(file, "<root>", "scalar mapping keys", f"key {k!r}")
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _depth_prescan(text: str, file: str) -> None:
    """Reject absurd nesting before the composer recurses into it."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InputError(file, "<root>", f"nesting at most {MAX_DEPTH} deep", "deeper nesting")
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, file) from None


def _yaml_error(exc: yaml.YAMLError, file: str) -> InputError:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}" if mark is not None else "<root>"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "could not determine a constructor" in str(exc):
        tag = str(exc).split("tag '")[-1].split("'")[0] if "tag '" in str(exc) else "a tag"
        return InputError(file, where, "plain YAML (safe tags only)", f"the unsafe tag {tag}")
    return InputError(file, where, "valid YAML", " ".join(str(problem).split()))


def loads(text: str, file: str = "<string>") -> Any:
    """Parse YAML text safely; raise InputError on anything malformed."""
    _depth_prescan(text, file)
    try:
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, file) from None
    except RecursionError:
        raise InputError(file, "<root>", f"nesting at most {MAX_DEPTH} deep", "deeper nesting") from None
    _check_size(data, file)
    return data


def load_file(path: str | Path) -> Any:
    """Read a YAML file; missing paths, directories, binary or empty files are InputErrors."""
    p = Path(path)
    file = str(path)
    if not p.exists():
        raise InputError(file, "<file>", "an existing file", "no such path")
    if p.is_dir():
        raise InputError(file, "<file>", "a YAML file", "a directory")
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise InputError(file, "<file>", f"at most {MAX_BYTES} bytes", f"{size} bytes")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(file, "<file>", "UTF-8 text", "binary data") from None
    if not text.strip():
        raise InputError(file, "<root>", "a YAML mapping", "an empty file")
    return loads(text, file)


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping."""
    data = load_file(path)
    if not isinstance(data, dict):
        # the kind only, never the text: the path may name a file that is no YAML document at all (/etc/shadow)
        kind = {type(None): "null", str: "a plain string", list: "a list"}.get(type(data), type(data).__name__)
        raise InputError(str(path), "<root>", "a YAML mapping (is this the right file?)", f"{kind}, not a mapping")
    return data


def dumps(data: Any) -> str:
    """Dump YAML in a stable, human-readable form (key order kept)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)
