"""Latency-prediction fidelity: for N architectures sampled from a space, measured vs predicted.

Profiles the space into a latency database (unit latencies plus a few whole networks for the overhead
fit), then samples N further architectures with seeds the profile never used and predicts each from
the database twice: first from the profile alone, blocks the database lacks being estimated
(`summary_estimated`), then with those blocks measured first (`summary`; that cost is reported).
Each is measured end to end (not stored, so it never feeds the fit). Reported: the share within ±5% and
±10%, the Spearman rank correlation, the worst case, what profiling cost, and with `--repeat` the
noise floor (two measurements of the same network). Every latency printed is labelled measured or
predicted.

    .venv/bin/python benchmarks/latency_fidelity.py --space search_spaces/yolo_nas_space.yaml \\
        --imgsz 320 --archs 20 --db runs/latency/fidelity.db --out runs/latency/fidelity.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from nasearch.latency.backend import get_backend
from nasearch.latency.db import LatencyDB
from nasearch.latency.predict import predict_from_db
from nasearch.latency.profile import at_size, profile_space
from nasearch.latency.units import arch_units
from nasearch.space import load_space

TEST_SEED_OFFSET = 500_000


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def summarize(rows: list[dict], key: str = "predicted_ms") -> dict:
    pred = np.array([r[key] for r in rows])
    meas = np.array([r["measured_ms"] for r in rows])
    err = pred / meas - 1.0
    worst = int(np.argmax(np.abs(err)))
    rho = float(spearmanr(pred, meas).statistic) if len(rows) > 2 else float("nan")
    return {
        "n": len(rows),
        "within_5pct": round(float(np.mean(np.abs(err) <= 0.05)), 4),
        "within_10pct": round(float(np.mean(np.abs(err) <= 0.10)), 4),
        "spearman": round(rho, 4),
        "mean_abs_error_pct": round(float(np.mean(np.abs(err))) * 100, 2),
        "worst_error_pct": round(float(err[worst]) * 100, 2),
        "worst_arch": rows[worst]["name"],
        "measured_range_ms": [round(float(meas.min()), 3), round(float(meas.max()), 3)],
    }


def repeatability(rows: list[dict]) -> dict:
    """How far two measurements of the same network differ: the floor under any prediction error."""
    diff = np.array([r["measured_again_ms"] / r["measured_ms"] - 1.0 for r in rows])
    return {
        "within_5pct": round(float(np.mean(np.abs(diff) <= 0.05)), 4),
        "within_10pct": round(float(np.mean(np.abs(diff) <= 0.10)), 4),
        "mean_abs_diff_pct": round(float(np.mean(np.abs(diff))) * 100, 2),
        "worst_diff_pct": round(float(diff[int(np.argmax(np.abs(diff)))]) * 100, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="search_spaces/yolo_nas_space.yaml")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--archs", type=int, default=20, help="test architectures (held out from the fit)")
    ap.add_argument("--db", default="runs/latency/fidelity.db")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", default="auto")
    ap.add_argument("--profile-archs", type=int, default=24, help="architectures sampled for the profile")
    ap.add_argument("--networks", type=int, default=8, help="whole networks measured for the overhead fit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the full result as JSON here")
    ap.add_argument(
        "--repeat",
        action="store_true",
        help="measure each network a second time: the measurement noise floor",
    )
    args = ap.parse_args(argv)

    space = load_space(args.space)
    backend = get_backend(args.backend, "fp32", 1, args.threads, clock=args.clock)
    fp = backend.fingerprint()
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    print(f"fingerprint: {fp.label()}", file=sys.stderr)
    with LatencyDB(args.db) as db:
        t0 = time.monotonic()
        report = profile_space(
            space,
            backend,
            db,
            args.imgsz,
            args.profile_archs,
            args.networks,
            args.seed,
            progress=lambda label, done, total: print(f"  profile {done}/{total} {label}", file=sys.stderr),
        )
        profile_seconds = time.monotonic() - t0
        print(
            f"profiled {report.signatures} blocks ({report.measured_now} now) and {report.networks_in_db} "
            f"networks in {profile_seconds:.0f} s; coverage {100 * report.coverage:.1f}%",
            file=sys.stderr,
        )
        tests = [at_size(space.sample(args.seed + TEST_SEED_OFFSET + i), args.imgsz) for i in range(args.archs)]
        # first, from the profile alone: blocks the database lacks are estimated (nothing is written)
        estimated = []
        for arch in tests:
            t1 = time.monotonic()
            est = predict_from_db(db, fp, arch, args.imgsz, missing="estimate")
            estimated.append((est, time.monotonic() - t1))
        rows = []
        for i, arch in enumerate(tests):
            t1 = time.monotonic()
            pred = predict_from_db(db, fp, arch, args.imgsz, backend, missing="measure")
            t2 = time.monotonic()
            model, _ = arch_units(arch, args.imgsz, backend.batch, real=True)
            meas = backend.measure_model(model, args.imgsz)
            t3 = time.monotonic()
            row = {
                "name": arch.name,
                "arch_hash": arch.hash,
                "predicted_ms": pred["predicted_ms"],
                "measured_ms": round(meas.median_ms, 4),
                "measured_p10_ms": round(meas.p10_ms, 4),
                "measured_p90_ms": round(meas.p90_ms, 4),
                "units_ms": pred["units_ms"],
                "units_measured_now": pred["units_measured_now"],
                "predict_seconds": round(t2 - t1, 2),
                "measure_seconds": round(t3 - t2, 2),
                "error_pct": round(100 * (pred["predicted_ms"] / meas.median_ms - 1), 2),
                "estimated_ms": estimated[i][0]["predicted_ms"],
                "units_estimated": estimated[i][0]["units_estimated"],
                "estimate_seconds": round(estimated[i][1], 3),
                "estimated_error_pct": round(100 * (estimated[i][0]["predicted_ms"] / meas.median_ms - 1), 2),
            }
            if args.repeat:
                again = backend.measure_model(model, args.imgsz)
                row["measured_again_ms"] = round(again.median_ms, 4)
            rows.append(row)
            print(
                f"  {i + 1:>3}/{args.archs} {arch.name}: predicted {row['predicted_ms']:.2f} ms, "
                f"measured {row['measured_ms']:.2f} ms ({row['error_pct']:+.1f}%), "
                f"{row['units_measured_now']} blocks measured for the prediction; "
                f"predicted with {row['units_estimated']} blocks estimated {row['estimated_ms']:.2f} ms "
                f"({row['estimated_error_pct']:+.1f}%)",
                file=sys.stderr,
            )
        fit = pred["overhead"] if rows else {}
    result = {
        "space": space.name,
        "imgsz": args.imgsz,
        "fingerprint": fp.as_dict(),
        "device": fp.label(),
        "summary": summarize(rows) if rows else {},
        "summary_estimated": summarize(rows, "estimated_ms") if rows else {},
        "noise_floor": repeatability(rows) if rows and args.repeat else {},
        "overhead_fit": fit,
        "profile": {**report.as_dict(), "seconds": round(profile_seconds, 1)},
        "cost": {
            "profile_seconds": round(profile_seconds, 1),
            "profile_blocks_measured": report.measured_now,
            "prediction_blocks_measured": sum(r["units_measured_now"] for r in rows),
            "prediction_seconds": round(sum(r["predict_seconds"] for r in rows), 1),
            "estimated_prediction_seconds": round(sum(r["estimate_seconds"] for r in rows), 1),
            "whole_network_measure_seconds": round(sum(r["measure_seconds"] for r in rows), 1),
        },
        "load_average": {"before": load_before, "after": load_average()},
        "rows": rows,
        "labels": {"predicted_ms": "predicted", "measured_ms": "measured"},
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    s = result["summary"]
    print(
        json.dumps(
            {
                "summary": s,
                "summary_estimated": result["summary_estimated"],
                "noise_floor": result["noise_floor"],
                "cost": result["cost"],
                "overhead_fit": fit,
                "load_average": result["load_average"],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
