"""Ingestion killed with SIGKILL mid-write: the warehouse is as before or fully after, and the
next run completes."""

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from offline_rl.crash import CRASH_ENV
from offline_rl.data.ingest import load_partition
from offline_rl.data.schemas import CLICKSTREAM
from offline_rl.data.warehouse import Warehouse

DAY = dt.date(2026, 10, 1)

WORKER = """
import datetime as dt, sys
from pathlib import Path
from offline_rl.data.ingest import load_partition
from offline_rl.data.schemas import SOURCES
home = Path(sys.argv[1])
load_partition(home / "landing", home / "warehouse.duckdb", SOURCES[sys.argv[2]],
               dt.date.fromisoformat(sys.argv[3]))
print("done")
"""


def _start(home: Path, day: dt.date, crash: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.Popen([sys.executable, "-c", WORKER, str(home), CLICKSTREAM.name,
                             day.isoformat()], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _run(home: Path, day: dt.date, crash: str | None = None) -> tuple[int, str]:
    proc = _start(home, day, crash)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err


def _state(home: Path) -> tuple:
    wh = Warehouse(home / "warehouse.duckdb")
    return (wh.digest(CLICKSTREAM.table), wh.digest("quarantine"))


def _expected(home: Path, tmp: Path) -> tuple:
    """The content a complete load of the current landing files gives (another warehouse)."""
    other = tmp / f"expected-{time.monotonic_ns()}"
    other.mkdir()
    for day in (DAY - dt.timedelta(days=1), DAY):
        load_partition(home / "landing", other / "warehouse.duckdb", CLICKSTREAM, day)
    return _state(other)


@pytest.fixture
def home(tmp_path) -> Path:
    from offline_rl.shop import write_landing

    home = tmp_path / "home"
    write_landing(home, days=2, start=DAY - dt.timedelta(days=1), seed=2, events_per_day=400)
    for day in (DAY - dt.timedelta(days=1), DAY):
        load_partition(home / "landing", home / "warehouse.duckdb", CLICKSTREAM, day)
    return home


def _new_delivery(home: Path) -> None:
    """A late file for DAY: new events, one bad row, and re-delivered ones."""
    folder = home / "landing" / CLICKSTREAM.name / f"date={DAY}"
    base = pl.read_parquet(next(folder.glob("part-*.parquet")))
    late = pl.concat([
        base.head(50).with_columns(event_id=pl.col("event_id") + "-late"),
        base.slice(50, 1).with_columns(event_id=pl.lit("bad-late"), behavior_prob=pl.lit(2.0)),
        base.slice(60, 5),
    ])
    late.write_csv(folder / "zz-late.csv")


@pytest.mark.parametrize("point", ["warehouse.after_delete", "warehouse.before_commit",
                                   "warehouse.after_commit"])
def test_killed_inside_the_write_leaves_before_or_after_and_rerun_completes(home, tmp_path,
                                                                           point):
    before = _state(home)
    _new_delivery(home)
    after = _expected(home, tmp_path)
    assert after != before

    code, output = _run(home, DAY, crash=point)
    assert code == -signal.SIGKILL, output
    assert _state(home) == (after if point == "warehouse.after_commit" else before)

    code, output = _run(home, DAY)
    assert code == 0 and "done" in output, output
    assert _state(home) == after


@pytest.mark.slow
def test_large_partition_killed_at_random_times(tmp_path):
    from offline_rl.bench import DAY as BENCH_DAY
    from offline_rl.bench import write_clickstream_day

    home = tmp_path / "home"
    write_clickstream_day(home, 300_000, seed=1)
    folder = home / "landing" / CLICKSTREAM.name / f"date={BENCH_DAY}"
    load_partition(home / "landing", home / "warehouse.duckdb", CLICKSTREAM, BENCH_DAY)
    before = _state(home)
    pl.read_parquet(next(folder.glob("*.parquet"))).head(1000).with_columns(
        event_id=pl.col("event_id") + "-x").write_parquet(folder / "zz-extra.parquet")
    after = _expected_for(home, tmp_path, BENCH_DAY)
    # a whole run (process start included) on a copy, so the kills land inside the run
    probe = tmp_path / "probe"
    shutil.copytree(home, probe)
    started = time.monotonic()
    code, output = _run(probe, BENCH_DAY)
    assert code == 0, output
    duration = time.monotonic() - started
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        proc = _start(home, BENCH_DAY)
        time.sleep(rng.uniform(0.1, 0.8) * duration)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=300)
        assert _state(home) in (before, after)
    assert kills > 0
    code, output = _run(home, BENCH_DAY)
    assert code == 0, output
    assert _state(home) == after


def _expected_for(home: Path, tmp: Path, day: dt.date) -> tuple:
    other = tmp / "expected"
    other.mkdir()
    load_partition(home / "landing", other / "warehouse.duckdb", CLICKSTREAM, day)
    return _state(other)
