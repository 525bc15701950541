"""Paths named by environment variables: a blank value is unset, `~` expands, every reader agrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasearch.app.explore import run_dir_from_env
from nasearch.envpaths import env_path, user_cache
from nasearch.search.objectives import default_data_cache


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_value_counts_as_unset(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NASEARCH_CACHE", value)
    assert default_data_cache() == user_cache()
    assert default_data_cache() != Path(".")
    monkeypatch.setenv("NASEARCH_RUN", value)
    assert run_dir_from_env() == Path("runs/quickstart")
    monkeypatch.setenv("NASEARCH_DATA", value)
    assert env_path("NASEARCH_DATA") is None


def test_value_is_used_and_home_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NASEARCH_CACHE", "~/data-cache")
    assert default_data_cache() == tmp_path / "data-cache"
    monkeypatch.delenv("NASEARCH_CACHE")
    assert default_data_cache() == tmp_path / ".cache" / "nasearch"
