"""The plain Dagster CLI works against the code location."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from offline_rl.data.warehouse import Warehouse
from offline_rl.simulator.logs import write_landing

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_asset_materialize_loads_a_partition(tmp_path):
    home = tmp_path / "home"
    write_landing(home, days=1, start=dt.date(2026, 10, 1), seed=2, events_per_day=1000)
    (tmp_path / "dagster").mkdir()
    env = {**os.environ, "OFFLINE_RL_HOME": str(home), "DAGSTER_HOME": str(tmp_path / "dagster")}
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "orchestration.definitions",
         "--select", "raw_clickstream", "--partition", "2026-10-01"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = Warehouse(home / "warehouse.duckdb").read_partitions(
        "raw_clickstream", dt.date(2026, 10, 1), dt.date(2026, 10, 1))
    assert rows.height > 500
