"""Shared fixtures: tiny simulated data homes in temporary directories."""

from __future__ import annotations

import datetime as dt
import os
import signal
import tempfile
from pathlib import Path

import pytest

from offline_rl.paths import HOME_ENV, DataPaths

# The suite never reads the developer's data home: a demo's calendar.json there would set the
# partitions every test of the code location sees (and $OFFLINE_RL_HOME, e.g. from the
# Makefile, would point the jobs' resource at it). Tests that need a home make their own.
os.environ[HOME_ENV] = tempfile.mkdtemp(prefix="offline-rl-tests-")
# (nor the developer's MLflow server: tests that track make their own store)
for _name in ("OFFLINE_RL_FIRST_DAY", "OFFLINE_RL_LAST_DAY", "OFFLINE_RL_FIRST_NIGHT",
              "OFFLINE_RL_LANDING", "OFFLINE_RL_EXPORTS", "OFFLINE_RL_MLFLOW_URI",
              "OFFLINE_RL_MLFLOW_ARTIFACTS"):
    os.environ.pop(_name, None)

# A shell without job control starts background commands with SIGINT ignored. Dagster maps
# SIGTERM to SIGINT's handler, so its compute-log `tail` children would then ignore SIGTERM and
# every captured step would wait twice 30 s for them to end: the suite runs as in a terminal
# however it was started.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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
    from offline_rl.shop import write_landing

    write_landing(paths.home, days=2, start=START, seed=1, events_per_day=4000)
    return paths
