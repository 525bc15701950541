"""Held-out check of the T4 latency model: published T4 TensorRT 10 figures it was never fitted on.

The figures (`latency_db/t4_heldout.csv`: YOLOv8 and YOLOv10) are read by this script alone, after the
fit is frozen (`latency_db/t4_model.json`, whose SHA-256 is printed); nothing here fits, tunes or selects.
Every held-out model with a preset is checked; those the DSL has no preset for are listed as not checked.
Reported for each family and for all together: each model's error, the mean and worst absolute error with
n and a 95% t-interval of the mean, the count within 20%, and whether the predicted order of every pair
with different published latencies is the published one.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/t4_heldout.py [--out /tmp/t4_heldout.json]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from nasearch.errors import InputError
from nasearch.latency.t4_model import REFERENCE_GENERATION, calibration_file, load_figures, model_file, predict_t4
from nasearch.resources import shipped
from nasearch.space import load_arch


def heldout_file() -> Path:
    return shipped("latency_db", "t4_heldout.csv")


def check(heldout: Path, calibration: Path, frozen: Path) -> dict:
    figures = load_figures(heldout)
    calibrated = load_figures(calibration)
    leaked = sorted({f.model for f in figures} & {f.model for f in calibrated})
    leaked += sorted({f.family for f in figures} & {f.family for f in calibrated})
    if leaked:
        raise SystemExit(f"held-out models or families are in the calibration file {calibration}: {leaked}")
    rows, unchecked = [], []
    for fig in figures:
        if fig.generation != REFERENCE_GENERATION or fig.precision != "fp16":
            raise SystemExit(f"{heldout}: {fig.model} is not a {REFERENCE_GENERATION} FP16 figure")
        try:
            arch = load_arch(fig.model)
        except InputError:
            unchecked.append(fig.model)
            continue
        pred = predict_t4(arch, "fp16", 640, fig.batch)["per_image_ms"]
        rows.append(
            {
                "model": fig.model,
                "family": fig.family,
                "published_ms": fig.ms,
                "predicted_ms": pred,
                "error_pct": round(100 * (pred / fig.ms - 1), 2),
            }
        )
    families = sorted({r["family"] for r in rows})
    return {
        "model_file_sha256": hashlib.sha256(frozen.read_bytes()).hexdigest(),
        "heldout": str(heldout.relative_to(shipped())),
        "rows": rows,
        "not_checked": unchecked,
        **summary(rows),
        "by_family": {family: summary([r for r in rows if r["family"] == family]) for family in families},
    }


def summary(rows: list[dict]) -> dict:
    """n, mean |error| with its 95% t-interval, worst, the count within 20%, and the order of every pair of
    models with different published latencies."""
    errs = np.array([abs(r["error_pct"]) for r in rows])
    n = len(errs)
    half = float(stats.t.ppf(0.975, n - 1) * errs.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    pairs = [(a, b) for a, b in itertools.combinations(rows, 2) if a["published_ms"] != b["published_ms"]]
    kept = [(a["published_ms"] < b["published_ms"]) == (a["predicted_ms"] < b["predicted_ms"]) for a, b in pairs]
    return {
        "n": n,
        "mean_abs_error_pct": round(float(errs.mean()), 2) if n else None,
        "mean_abs_error_ci95_pct": [round(float(errs.mean()) - half, 2), round(float(errs.mean()) + half, 2)]
        if n > 1
        else None,
        "worst_abs_error_pct": round(float(errs.max()), 2) if n else None,
        "within_20pct": int((errs <= 20).sum()),
        "pairs_in_order": f"{sum(kept)}/{len(kept)}",
        "order_preserved": all(kept),
    }


def summary_line(label: str, doc: dict) -> str:
    return (
        f"{label:<8} n {doc['n']}, mean |error| {doc['mean_abs_error_pct']}% "
        f"(95% CI {doc['mean_abs_error_ci95_pct']}), "
        f"worst {doc['worst_abs_error_pct']}%, within 20%: {doc['within_20pct']}/{doc['n']}, "
        f"order {doc['pairs_in_order']} pairs"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON")
    args = parser.parse_args(argv)
    doc = check(heldout_file(), calibration_file(), model_file())
    for r in doc["rows"]:
        print(
            f"{r['model']:<10} published {r['published_ms']:6.2f} ms  predicted {r['predicted_ms']:6.2f} ms  "
            f"{r['error_pct']:+6.1f}%"
        )
    for family, part in doc["by_family"].items():
        print(summary_line(family, part))
    print(summary_line("all", doc))
    print(f"not checked (no preset): {', '.join(doc['not_checked']) or 'none'}")
    print(f"frozen model sha256 {doc['model_file_sha256']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
