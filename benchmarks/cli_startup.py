"""Start-up time of the command line: `nasearch --help` and `nasearch space info search_spaces/yolo_nas_space.yaml`.

Each command runs N times (default 9) as a fresh process with OMP_NUM_THREADS=1; the wall-clock time of the
whole process is recorded. The report gives, per command, the median with its bootstrap 95% interval
(`nasearch.stats.location`), min and max, and the verdict against its target (`--help` <= 1 s, `space info` <= 2 s):
"meets" only when the whole interval lies at or below the target, "misses" when it lies above, else "not shown".
The 1-minute load average is read before and after; when it exceeds LOADED (per core) the figures describe a
shared machine, not nasearch, and the report says so ("loaded": true) — do not quote them.

    .venv/bin/python benchmarks/cli_startup.py [--runs 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from nasearch.stats import location

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "--help": (["--help"], 1.0),
    "space info": (["space", "info", "search_spaces/yolo_nas_space.yaml"], 2.0),
}
LOADED = 0.5  # 1-minute load average per core above which the machine counts as shared


def _load_per_core() -> float:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def time_command(args: list[str], runs: int) -> list[float]:
    """Seconds of `python -m nasearch.cli.main ARGS`, one fresh process per run (first run included: a
    user's first call is a cold one too, and the median is robust to it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "nasearch.cli.main", *args],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds.append(time.perf_counter() - start)
    return seconds


def verdict(low: float, high: float, target: float) -> str:
    if high <= target:
        return "meets"
    if low > target:
        return "misses"
    return "not shown"


def report(runs: int) -> dict:
    load_before = _load_per_core()
    rows = {}
    for name, (args, target) in COMMANDS.items():
        seconds = time_command(args, runs)
        median = location(seconds, "median")
        rows[name] = {
            "command": "nasearch " + " ".join(args),
            "n": runs,
            "median_s": round(median.estimate, 3),
            "ci95_s": [round(median.low, 3), round(median.high, 3)],
            "min_s": round(min(seconds), 3),
            "max_s": round(max(seconds), 3),
            "target_s": target,
            "verdict": verdict(median.low, median.high, target),
            "seconds": [round(s, 3) for s in seconds],
        }
    load_after = _load_per_core()
    loaded = max(load_before, load_after) > LOADED
    return {
        "commands": rows,
        "load_per_core": [round(load_before, 2), round(load_after, 2)],
        "loaded": loaded,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9, help="processes per command (n)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    if args.runs < 3:
        ap.error("--runs must be at least 3 (a median and its interval need several runs)")
    doc = report(args.runs)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    for row in doc["commands"].values():
        print(
            f"{row['command']}: median {row['median_s']:.2f} s [{row['ci95_s'][0]:.2f}, {row['ci95_s'][1]:.2f}] "
            f"(n = {row['n']}, min {row['min_s']:.2f}, max {row['max_s']:.2f}); target <= {row['target_s']} s: "
            f"{row['verdict']}"
        )
    if doc["loaded"]:
        print(
            f"machine loaded (load per core {doc['load_per_core']}, above {LOADED}): these figures describe the "
            "shared machine, not nasearch; do not quote them",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
