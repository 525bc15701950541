"""The Ray executor on a local 2-CPU Ray: trials run in Ray workers, per-trial custom resources are
honoured, and everything lands in the same Optuna study a local search writes."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nasearch.app.search import run_search
from nasearch.errors import InputError
from nasearch.search.study import RunInfo, load_study
from tests.fixtures import MEASURED_ORT, tiny_experiment

ray = pytest.importorskip("ray")

EXPERIMENT = tiny_experiment(
    "ray-test",
    3,
    seed=5,
    latency=MEASURED_ORT,
    extra="executor:\n  kind: ray\n  resources: {CPU: 1, latency_slot: 1}\n",
)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """Two CPUs and one `latency_slot`: trials needing the slot must run one at a time."""
    ray.init(
        num_cpus=2, resources={"latency_slot": 1}, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
    )
    yield
    ray.shutdown()


def test_ray_trials_run_in_workers_one_slot_at_a_time(tmp_path: Path, local_ray: None) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT)
    run_dir = tmp_path / "run"
    doc = run_search(exp, run_dir, show_progress=False)
    info = RunInfo.load(run_dir)
    study: optuna.Study = load_study(info.storage, info.study_name)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3 == doc["trials"]["complete"]
    assert info.storage.endswith(str(run_dir / "study.db"))
    spans = []
    for t in done:
        attrs = t.user_attrs
        assert attrs["latency_measured"] is True and attrs["latency_method"].startswith("onnxruntime")
        assert int(attrs["worker"].rsplit(":", 1)[1]) != os.getpid()
        rung0 = attrs["rungs"][0]
        assert rung0["kind"] == "gflops" and t.values[1] == pytest.approx(rung0["accuracy"])
        spans.append((attrs["worker_started"], attrs["worker_finished"]))
    spans.sort()
    assert all(a[1] <= b[0] + 0.05 for a, b in itertools.pairwise(spans)), (
        f"trials overlapped although each needs the only latency_slot: {spans}"
    )
    assert (run_dir / "pareto.csv").is_file() and doc["front"]


def test_ray_resource_the_cluster_lacks_is_an_input_error(tmp_path: Path, local_ray: None) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT.replace("latency_slot: 1", "T4: 1"))
    with pytest.raises(InputError) as err:
        run_search(exp, tmp_path / "run", show_progress=False)
    assert err.value.path == "executor.resources.T4"
    assert "the cluster has 0.0" in err.value.found
