"""The per-epoch log: `results.csv` and the `results.png` curves drawn from it."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasearch import atomic
from nasearch.plotting import pyplot


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Rewrite the whole log from the rows (kept in the checkpoint), so it always matches `last.pt`."""
    p = Path(path)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    atomic.write_bytes(p, buf.getvalue().encode())
    return p


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def plot_results(rows: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """One small panel per numeric column (losses, mAP, learning rate) against the epoch."""
    if not rows:
        return None
    plt = pyplot()

    epochs = [int(r["epoch"]) for r in rows]
    keys = [k for k in rows[-1] if k != "epoch" and all(isinstance(r.get(k), int | float) for r in rows)]
    keys = [k for k in keys if not k.startswith("time")]
    if not keys:
        return None
    cols = min(4, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        ax.plot(epochs, [float(r[key]) for r in rows], marker="o", markersize=2.5, linewidth=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    p = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic.write_bytes(p, buf.getvalue())
    return p
