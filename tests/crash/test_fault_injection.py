"""The fault-injection harness: it passes on the real loader and notices a lost row."""

import datetime as dt
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from offline_rl.data.ingest import load_partition
from offline_rl.data.schemas import CART
from offline_rl.data.warehouse import Warehouse
from offline_rl.paths import DataPaths

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fault_injection.py"
DAY = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("fault_injection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_injection"] = module
    spec.loader.exec_module(module)
    return module


def _partition(harness, tmp_path):
    from offline_rl.shop import write_landing

    paths = DataPaths(tmp_path / "home")
    write_landing(paths.home, days=1, start=DAY, seed=4, events_per_day=300)
    folder = paths.landing / CART.name / f"date={DAY}"
    original = pl.concat([pl.read_parquet(f) for f in sorted(folder.glob("*.parquet"))])
    ledger = harness.Ledger(schema=CART, original=original)
    for f in sorted(folder.glob("*.parquet")):
        frame = pl.read_parquet(f)
        ledger.add(f.relative_to(paths.landing).as_posix(), frame[CART.key],
                   np.ones(frame.height, dtype=bool))
    return paths, folder, ledger


def test_a_clean_load_checks_out_and_a_dropped_row_is_counted_lost(harness, tmp_path):
    paths, folder, ledger = _partition(harness, tmp_path)
    load_partition(paths.landing, paths.warehouse, CART, DAY)
    result = harness.check_partition(paths, ledger, DAY)
    assert result["written"] > 0
    assert (result["lost"], result["corrupted"], result["duplicates_in_table"]) == (0, 0, 0)
    # a row the harness wrote that the table does not hold (as if the loader dropped it)
    wh = Warehouse(paths.warehouse)
    wh.replace_partition(CART.table, wh.read_partitions(CART.table, DAY, DAY).slice(1), day=DAY)
    assert harness.check_partition(paths, ledger, DAY)["lost"] == 1


def test_a_changed_value_is_counted_corrupted(harness, tmp_path):
    paths, folder, ledger = _partition(harness, tmp_path)
    first = next(folder.glob("*.parquet"))
    pl.read_parquet(first).with_columns(pl.col("n_items") + 1).write_parquet(first)
    load_partition(paths.landing, paths.warehouse, CART, DAY)
    assert harness.check_partition(paths, ledger, DAY)["corrupted"] > 0


@pytest.mark.slow
def test_two_rounds_lose_nothing():
    out = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "2", "--seed", "1",
                          "--events-per-day", "1500"], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "lost                        0" in out.stdout
    assert "OK: nothing lost" in out.stdout
