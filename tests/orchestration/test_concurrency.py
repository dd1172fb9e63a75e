"""Parallel writers and readers on one warehouse: no lock errors, nothing lost."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import time
from pathlib import Path

import dagster as dg
import pytest

from offline_rl.data.schemas import SOURCES
from offline_rl.data.warehouse import Warehouse
from offline_rl.paths import DataPaths
from offline_rl.shop import write_landing

START = dt.date(2026, 3, 1)
DAYS = 30


def _ingest_days(home: str, days: list[str]) -> int:
    from offline_rl.pipeline import ingest_partition

    paths = DataPaths(Path(home))
    rows = 0
    for day in days:
        for schema in SOURCES.values():
            rows += ingest_partition(paths, schema, dt.date.fromisoformat(day)).rows.height
    return rows


def _read_while_writing(home: str, stop: str) -> int:
    """Reads the raw table in a loop until ``stop`` exists (the writers are done)."""
    wh = Warehouse(DataPaths(Path(home)).warehouse)
    reads = 0
    deadline = time.monotonic() + 300
    while not Path(stop).exists() and time.monotonic() < deadline:
        if wh.path.exists() and wh.table_exists("raw_clickstream"):
            wh.read_partitions("raw_clickstream", START, START + dt.timedelta(days=DAYS))
            reads += 1
    return reads


def test_backfill_of_30_days_by_four_processes_with_a_reader(tmp_path):
    home = tmp_path / "home"
    summary = write_landing(home, days=DAYS, start=START, seed=3, events_per_day=400)
    # episodes that last several days land in the folders of the days after the last one too
    days = sorted({d.name.removeprefix("date=") for s in SOURCES.values()
                   for d in (home / "landing" / s.name).iterdir()})
    assert len(days) >= DAYS
    ctx = mp.get_context("spawn")
    with ctx.Pool(5) as pool:
        stop = tmp_path / "writers-done"
        reader = pool.apply_async(_read_while_writing, (str(home), str(stop)))
        loads = [pool.apply_async(_ingest_days, (str(home), days[i::4])) for i in range(4)]
        loaded = sum(r.get(timeout=300) for r in loads)  # re-raises any lock error
        stop.touch()
        assert reader.get(timeout=300) > 0
    wh = Warehouse(DataPaths(Path(home)).warehouse)
    last = dt.date.fromisoformat(days[-1])
    in_tables = sum(wh.read_partitions(s.table, START, last).height for s in SOURCES.values())
    assert loaded == in_tables == sum(summary.rows.values())


@pytest.mark.slow
def test_ingest_job_on_the_multiprocess_executor(tmp_path):
    """Seven raw assets written by parallel step processes, for three partitions."""
    from orchestration.definitions import ingest_job_def

    home = tmp_path / "home"
    write_landing(home, days=3, start=START, seed=4, events_per_day=400)
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    config = {"resources": {"data_home": {"config": {"home": str(home)}}},
              "execution": {"config": {"max_concurrent": 4}}}
    for i in range(3):
        day = (START + dt.timedelta(days=i)).isoformat()
        result = dg.execute_job(dg.reconstructable(ingest_job_def), instance=instance,
                                run_config=config, tags={"dagster/partition": day})
        assert result.success, day
    wh = Warehouse(DataPaths(Path(home)).warehouse)
    assert all(wh.table_exists(s.table) for s in SOURCES.values())
