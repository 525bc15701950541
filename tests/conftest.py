from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
PRESETS = SPACES / "presets"

torch.set_num_threads(1)  # small tensors: one thread is faster and steadier than two


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_space_path() -> Path:
    return SPACES / "tiny_space.yaml"
