"""Shared fixtures: tiny simulated data homes in temporary directories."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from offline_rl.paths import DataPaths

START = dt.date(2026, 10, 1)


@pytest.fixture
def memory_fs():
    """fsspec's process-wide ``memory://`` filesystem (object storage in tests), emptied before
    and after the test."""
    import fsspec

    fs = fsspec.filesystem("memory")

    def clear() -> None:
        fs.store.clear()
        fs.pseudo_dirs[:] = [""]

    clear()
    yield fs
    clear()


@pytest.fixture
def paths(tmp_path: Path) -> DataPaths:
    return DataPaths(tmp_path / "home")


@pytest.fixture
def landing_paths(paths: DataPaths) -> DataPaths:
    """A data home with two simulated days (about 4,000 clickstream events a day)."""
    from offline_rl.simulator.logs import write_landing

    write_landing(paths.home, days=2, start=START, seed=1, events_per_day=4000)
    return paths
