from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
PRESETS = SPACES / "presets"

pytest_plugins = ["tests.cluster"]  # the `postgres` and `ray_cluster` fixtures

torch.set_num_threads(1)  # small tensors: one thread is faster and steadier than two


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_space_path() -> Path:
    return SPACES / "tiny_space.yaml"


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread for the test, restored after it (a test or library may have changed it):
    these networks are small, and on a shared, busy CPU a second thread mostly waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def predicted_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic, instant latency for tests of the search logic: a fixed cost per parameter, stated as
    predicted (the measured path is exercised by the subprocess and Ray tests)."""
    from nasearch.nn.inspect import count_params
    from nasearch.search.objectives import LatencyEvaluator, LatencyResult

    def screen(self: LatencyEvaluator, arch: object, fused: torch.nn.Module) -> LatencyResult:
        return LatencyResult(0.05 + count_params(fused) / 1e6, False, "test: 1 ms per million parameters")

    monkeypatch.setattr(LatencyEvaluator, "screen", screen)
