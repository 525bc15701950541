"""The benchmarks' statistics go through the frozen protocol; the committed proxy-trust table reproduces."""

from __future__ import annotations

import pytest

from nasearch import stats
from tests.conftest import ROOT
from tests.fixtures import benchmark_script


def test_committed_proxy_trust_table_reproduces_and_vote_does_not_beat_flops():
    pt = benchmark_script("proxy_trust")
    entries, measured = pt.entries_from_readme(ROOT / "benchmarks" / "README.md", "proxy-trust")
    assert len(entries) == 20 and measured.startswith("Measured 2026-11-24")
    target = pt.mean_of_seeds(pt.column(entries, "long"), pt.column(entries, "long_seed2"))
    flops, vote = pt.column(entries, "flops"), pt.mean_rank(entries, ("short_b", "flops"))
    assert stats.correlation(flops, target, resamples=200).estimate == pytest.approx(0.814, abs=5e-4)
    assert stats.correlation(vote, target, resamples=200).estimate == pytest.approx(0.864, abs=5e-4)
    diff = stats.correlation_difference(target, vote, flops, resamples=2000)
    assert diff.estimate == pytest.approx(0.050, abs=5e-3) and diff.verdict == "not shown"
    assert diff.low < 0 < diff.high


def test_search_efficiency_pairs_by_seed():
    se = benchmark_script("search_efficiency")
    assert se.trials_to_reach([1.0, 2.0, 3.0], 2.0) == 2 and se.trials_to_reach([1.0], 5.0) == 2
    hv = {
        "random": {"0": [1.0, 2.0, 3.0, 4.0], "1": [1.0, 1.5, 2.0, 3.0], "2": [0.5, 1.0, 2.0, 2.5]},
        "default": {"0": [2.0, 4.0], "1": [1.5, 3.5], "2": [1.0, 2.0]},
    }
    runs = {
        label: {k: [{"feasible": i % 2 == 0} for i in range(len(c))] for k, c in by.items()} for label, by in hv.items()
    }
    out = se.paired_statistics(hv, runs, [0, 1, 2], trials=2, random_trials=4)
    d = out["vs_random"]["default"]["2_vs_4"]
    assert d["estimate"] == pytest.approx(((4 - 4) + (3.5 - 3) + (2 - 2.5)) / 3) and d["verdict"] == "not shown"
    assert out["vs_random"]["default"]["2_vs_2"]["verdict"] == "beats"  # ahead at equal budgets on every seed
    assert out["trials_to_random_hv"]["default"]["per_seed"] == [2, 2, 3]
    assert out["infeasible_share"]["random"] == pytest.approx(0.5)


def test_proxy_trust_counts_trainings_by_cpu_path_and_says_so_when_mixed():
    pt = benchmark_script("proxy_trust")
    entries = [
        {"long": {"value": 10.0}, "short_a": {"value": 1.0, "isa": "vnni"}, "short_b": {"value": None}},
        {"long": {"value": 11.0, "isa": "no-vnni"}, "long_seed2": {"value": 12.0, "isa": "vnni"}},
    ]
    assert pt.trainings_by_cpu(entries) == {"no-vnni": 1, "unrecorded": 1, "vnni": 2}
    assert pt.trainings_by_cpu([{"long": {"value": 1.0, "isa": "vnni"}}]) == {"vnni": 1}


def test_committed_fresh_architecture_rerun_shows_no_proxy_beating_flops():
    pt = benchmark_script("proxy_trust")
    entries, _ = pt.entries_from_readme(ROOT / "benchmarks" / "README.md", "proxy-trust-v2")
    assert len(entries) == 30
    target = pt.mean_of_seeds(pt.column(entries, "long"), pt.column(entries, "long_seed2"))
    flops = pt.column(entries, "flops")
    assert stats.correlation(flops, target, resamples=200).estimate == pytest.approx(0.641, abs=5e-3)
    for proxy in ("naswot", "short_b", "params"):
        diff = stats.correlation_difference(target, pt.column(entries, proxy), flops, resamples=2000)
        assert diff.estimate < 0 and diff.verdict == "not shown"


def test_search_efficiency_reads_the_frozen_objective_its_committed_runs_were_made_with():
    from nasearch.search.experiment import load_experiment

    se = benchmark_script("search_efficiency")
    key = se.screening_key(load_experiment(str(se.FROZEN_EXPERIMENT)))
    for folder in ("search_efficiency", "search_efficiency_surrogate2"):
        assert (ROOT / "benchmarks" / "results" / folder / f"runs-{key}.json").is_file()
