"""`benchmarks/cluster_scaling.py` runs on a tiny budget on the test cluster, and its statistics are right."""

from __future__ import annotations

import math

import pytest

from tests.cluster import PostgresServer, RayCluster
from tests.fixtures import benchmark_script

bench = benchmark_script("cluster_scaling", "cluster_scaling")


def test_summary_statistics() -> None:
    runs = [
        bench.Run(c, 6, s)
        for c, s in [
            ("local, 1 worker", 30),
            ("ray, 1 node", 60),
            ("ray, 2 nodes", 30),
            ("local, 1 worker", 30),
            ("ray, 1 node", 60),
            ("ray, 2 nodes", 40),
        ]
    ]
    doc = bench.summarize(runs)
    assert doc["n_runs"] == 2
    one = doc["configs"]["ray, 1 node"]
    assert one["trials_per_minute"] == pytest.approx(6.0) and one["ci95"] == pytest.approx([6.0, 6.0])
    two = doc["configs"]["ray, 2 nodes"]
    assert two["trials_per_minute"] == pytest.approx(10.5) and two["ci95"][0] < 10.5 < two["ci95"][1]
    assert doc["scaling_2_over_1"]["ratio"] == pytest.approx(1.75)
    assert 1.5 <= doc["scaling_2_over_1"]["lo"] <= 1.75 <= doc["scaling_2_over_1"]["hi"] <= 2.0
    assert doc["local_over_ray_1"]["ratio"] == pytest.approx(2.0)
    assert "scaling, 2 nodes / 1 node: 1.75" in bench.report(doc)


@pytest.mark.cluster
def test_benchmark_runs_on_a_tiny_budget(
    postgres: PostgresServer, ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ray_cluster.client_env.items():
        monkeypatch.setenv(key, value)
    runs = bench.measure(postgres, ray_cluster, trials=1, repeats=1)
    assert [r.config for r in runs] == list(bench.CONFIGS)
    assert all(r.trials == 1 and r.seconds > 0 for r in runs)
    doc = bench.summarize(runs)
    assert doc["n_runs"] == 1 and doc["scaling_2_over_1"]["ratio"] > 0
    assert math.isnan(doc["configs"]["ray, 1 node"]["ci95"][0])  # one run: no interval claimed
    assert "trials/min" in bench.report(doc)
