"""Cluster scaling: the same small search on one and on two Ray nodes of one CPU each, and the local executor.

A throw-away PostgreSQL server holds every study (a fresh database per run) and a local Ray cluster of two
node processes runs the trials: the head (1 CPU) and a node of 1 CPU that advertises `T4`, as the test
cluster does (`tests/cluster.py`). "One node" runs trials that need `{CPU: 1, T4: 1}`, so only the T4 node
takes them; "two nodes" runs trials that need `{CPU: 1}`, so both do. "Local" is the local executor with
one worker on the same study storage. Each run is a whole search session (`run_search`: Ray connect, worker
start-up, every trial told), with random sampling, no presets, screening by FLOPs and latency measured with
onnxruntime on one thread at 64 px, so trials are short and the executor's overhead shows.

Reported per configuration: trials per minute (complete trials / session seconds), mean over `--repeats`
runs with a 95% t-interval; the scaling ratio (two nodes / one node) and the local executor's throughput
over one Ray node, each with a 95% bootstrap interval over runs. Time it only on an otherwise idle machine.

    python benchmarks/cluster_scaling.py [--trials 12] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasearch.app.search import run_search  # noqa: E402
from nasearch.search.experiment import experiment_from_dict  # noqa: E402
from tests.cluster import PostgresServer, RayCluster  # noqa: E402

CONFIGS = {  # label -> executor
    "local, 1 worker": {"kind": "local", "workers": 1},
    "ray, 1 node": {"kind": "ray", "resources": {"CPU": 1, "T4": 1}},
    "ray, 2 nodes": {"kind": "ray", "resources": {"CPU": 1}},
}
BOOTSTRAP = 2000


@dataclass
class Run:
    config: str
    trials: int
    seconds: float

    @property
    def per_minute(self) -> float:
        return 60.0 * self.trials / self.seconds


def _experiment(url: str, executor: dict, trials: int, seed: int) -> Any:
    raw = {
        "name": "cluster-scaling",
        "space": str(ROOT / "search_spaces" / "tiny_space.yaml"),
        "imgsz": 64,
        "objectives": {
            "latency": {"source": "measure", "backend": "onnxruntime", "threads": 1},
            "accuracy": {"screen": {"proxy": "flops"}},
        },
        "presets": False,
        "sampler": "random",
        "trials": trials,
        "seed": seed,
        "storage": url,
        "executor": executor,
    }
    return experiment_from_dict(raw)


def run_once(config: str, url: str, address: str, trials: int, seed: int, out: Path) -> Run:
    executor = dict(CONFIGS[config])
    if executor["kind"] == "ray":
        executor["address"] = address
    doc = run_search(_experiment(url, executor, trials, seed), out, show_progress=False)
    return Run(config, int(doc["trials"]["complete"]), float(doc["seconds"]))


def measure(postgres: PostgresServer, cluster: RayCluster, trials: int, repeats: int) -> list[Run]:
    """Every configuration `repeats` times, interleaved (so a slow spell of the machine hits all alike)."""
    os.environ.update(cluster.client_env)
    runs = []
    with tempfile.TemporaryDirectory(prefix="nasearch-scaling-") as tmp:
        for r in range(repeats):
            for k, config in enumerate(CONFIGS):
                runs.append(
                    run_once(config, postgres.url(), cluster.address, trials, seed=r, out=Path(tmp) / f"run{r}-{k}")
                )
    return runs


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def _ratio_ci(num: list[float], den: list[float], seed: int = 0) -> tuple[float, float, float]:
    ratio = statistics.fmean(num) / statistics.fmean(den)
    if len(num) < 2:
        return ratio, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    a, b = np.asarray(num), np.asarray(den)
    idx = rng.integers(0, len(a), size=(BOOTSTRAP, len(a)))
    boots = a[idx].mean(axis=1) / b[idx].mean(axis=1)
    return ratio, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def summarize(runs: list[Run]) -> dict[str, Any]:
    per = {c: [r.per_minute for r in runs if r.config == c] for c in CONFIGS}
    doc: dict[str, Any] = {"n_runs": len(per["ray, 1 node"]), "trials_per_run": [r.trials for r in runs], "configs": {}}
    for config, values in per.items():
        mean, lo, hi = _mean_ci(values)
        doc["configs"][config] = {"trials_per_minute": mean, "ci95": [lo, hi], "runs": values}
    doc["scaling_2_over_1"] = dict(
        zip(("ratio", "lo", "hi"), _ratio_ci(per["ray, 2 nodes"], per["ray, 1 node"]), strict=True)
    )
    doc["local_over_ray_1"] = dict(
        zip(("ratio", "lo", "hi"), _ratio_ci(per["local, 1 worker"], per["ray, 1 node"]), strict=True)
    )
    return doc


def report(doc: dict[str, Any]) -> str:
    lines = [f"{'configuration':<18} {'trials/min':>10}  95% interval   (n = {doc['n_runs']} runs each)"]
    for config, d in doc["configs"].items():
        lines.append(f"{config:<18} {d['trials_per_minute']:>10.2f}  [{d['ci95'][0]:.2f}, {d['ci95'][1]:.2f}]")
    s, o = doc["scaling_2_over_1"], doc["local_over_ray_1"]
    lines.append(f"scaling, 2 nodes / 1 node: {s['ratio']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}]")
    lines.append(f"local executor / 1 Ray node (Ray's overhead): {o['ratio']:.2f} [{o['lo']:.2f}, {o['hi']:.2f}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12, help="complete trials per search")
    ap.add_argument("--repeats", type=int, default=3, help="searches per configuration")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    postgres, cluster = PostgresServer(), RayCluster()
    try:
        postgres.start()
        cluster.start()
        cluster.add_node("t4", {"T4": 1.0})
        cluster.wait_for({"CPU": 2.0, "T4": 1.0})
        doc = summarize(measure(postgres, cluster, args.trials, args.repeats))
    finally:
        cluster.stop()
        postgres.stop()
    print(json.dumps(doc, indent=2) if args.json else report(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
