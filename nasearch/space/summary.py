"""A readable, stage-by-stage account of an architecture (for notebooks, reports and comparisons)."""

from __future__ import annotations

from typing import Any

import torch

from nasearch.nn.inspect import count_params
from nasearch.space.arch import Architecture
from nasearch.space.build import build_model

SHAPE_KEYS = (
    "out",
    "down",
    "lateral",
    "blocks",
    "hidden",
    "e",
    "block",
    "c3k",
    "psa_blocks",
    "concat_intermediates",
    "width_mult",
    "variant",
    "k",
)


def _row(part: str, spec: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"part": part, "type": spec.get("type", "")}
    for key in SHAPE_KEYS:
        if key in spec:
            row[key] = spec[key]
    return row


def summarize(arch: Architecture) -> list[dict[str, Any]]:
    """One row per component and neck level: block type, depth, width and its own parameter count."""
    data = arch.data
    with torch.device("meta"):  # parameter counts need shapes only
        model = build_model(arch)
    bb = data["backbone"]
    rows = [{**_row("stem", bb["stem"]), "params": count_params(model.stem)}]
    for i, (spec, module) in enumerate(zip(bb["stages"], model.stages, strict=True)):
        rows.append({**_row(f"stage{i + 1} (stride {2 ** (i + 2)})", spec), "params": count_params(module)})
    rows.append({**_row("context", bb["context"]), "params": count_params(model.context)})
    neck = data["neck"]
    levels = [k for k, v in neck.items() if isinstance(v, dict)]
    for name in levels:
        rows.append({**_row(f"neck.{name}", neck[name]), "type": neck["type"]})
    rows.append({"part": "neck (all)", "type": neck["type"], "params": count_params(model.neck)})
    rows.append({**_row("head", data["head"]), "params": count_params(model.head)})
    return rows


def compare(a: Architecture, b: Architecture) -> list[dict[str, Any]]:
    """Side-by-side rows of two architectures' summaries, flagging the parts that differ."""
    left, right = summarize(a), summarize(b)
    out = []
    for ra, rb in zip(left, right, strict=False):
        fields = [k for k in ("type", *SHAPE_KEYS, "params") if k in ra or k in rb]
        row: dict[str, Any] = {"part": ra["part"]}
        for k in fields:
            row[f"{a.name}:{k}"] = ra.get(k, "")
            row[f"{b.name}:{k}"] = rb.get(k, "")
        row["differs"] = any(ra.get(k) != rb.get(k) for k in fields)
        out.append(row)
    return out
