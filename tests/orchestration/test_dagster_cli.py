"""The plain Dagster CLI works against the code location."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from offline_rl.data.warehouse import Warehouse
from offline_rl.shop import write_landing

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_asset_materialize_loads_a_day_a_year_before_today(tmp_path):
    """A shop's history: the first day is the shop's ($OFFLINE_RL_FIRST_DAY), not a fixed one,
    and loading the code location prints neither gym's notice nor Dagster's warnings about
    this project's definitions. A landing file rejected whole is named, with its reason, in
    what the command prints (the run itself succeeds: the other files load)."""
    day = dt.date.today() - dt.timedelta(days=366)
    home = tmp_path / "home"
    write_landing(home, days=1, start=day, seed=2, events_per_day=1000)
    bad = home / "landing" / "clickstream" / f"date={day:%Y-%m-%d}" / "broken-export.csv"
    bad.write_text("event_id,user_id\ne1,u1\n")
    (tmp_path / "dagster").mkdir()
    env = {**os.environ, "OFFLINE_RL_HOME": str(home), "DAGSTER_HOME": str(tmp_path / "dagster"),
           "OFFLINE_RL_FIRST_DAY": (day - dt.timedelta(days=30)).isoformat(),
           "PYTHONWARNINGS": "default::DeprecationWarning"}
    env.pop("OFFLINE_RL_LAST_DAY", None)
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "orchestration.definitions",
         "--select", "raw_clickstream", "--partition", day.isoformat()],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = Warehouse(home / "warehouse.duckdb").read_partitions("raw_clickstream", day, day)
    assert rows.height > 500
    out = proc.stdout + proc.stderr
    name = f"clickstream/date={day:%Y-%m-%d}/broken-export.csv"
    warning = [line for line in out.splitlines() if " - WARNING - " in line]
    assert any(f"1 file(s) rejected: {name} (missing column(s) event_ts" in line
               for line in warning), out[-3000:]
    assert f"'no_rejected_files' on 'raw_clickstream' did not pass. Description: '1 landing " \
           f"file(s) rejected whole: {name}" in out
    assert "Gym has been unmaintained" not in proc.stderr
    assert "orchestration/" not in proc.stderr  # no warning raised by our definitions


HONEST_COUNTS = """
import datetime as dt, json
from orchestration.cli import _instance, run_job
from offline_rl.paths import DataPaths
from orchestration.definitions import defs
paths = DataPaths.resolve()
instance = _instance(paths)
for day in (dt.date(2026, 10, 1), dt.date(2026, 10, 2)):
    run_job("ingest", day, {}, instance)
    run_job("transitions", day, {}, instance, domains=["cart"])
graph = defs.resolve_asset_graph()
counts = {}
for key in graph.get_all_asset_keys():
    partitions = graph.get(key).partitions_def.get_partition_keys()
    done = instance.get_materialized_partitions(key)
    counts[key.to_user_string()] = [len(partitions), len(done)]
print(json.dumps(counts))
"""


def test_after_ingesting_the_calendars_days_no_raw_partition_is_missing(tmp_path):
    """What the UI counts as missing, from Dagster's own records: with the data home's
    calendar (as the demo writes it), the ingested days are every partition there is, and the
    nightly stages have partitions from the first night on only."""
    home = tmp_path / "home"
    write_landing(home, days=2, start=dt.date(2026, 10, 1), seed=2, events_per_day=1000)
    (home / "calendar.json").write_text('{"first_day": "2026-10-01", "last_day": "2026-10-02", '
                                        '"first_night": "2026-10-02"}')
    env = {k: v for k, v in os.environ.items()
           if k not in ("OFFLINE_RL_FIRST_DAY", "OFFLINE_RL_LAST_DAY", "OFFLINE_RL_FIRST_NIGHT")}
    env.update(OFFLINE_RL_HOME=str(home), DAGSTER_HOME=str(tmp_path / "dagster"))
    proc = subprocess.run([sys.executable, "-c", HONEST_COUNTS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    raw = {k: v for k, v in counts.items() if k.startswith("raw_")}
    assert raw and all(v == [2, 2] for v in raw.values()), raw
    assert counts["cart_transitions"] == [2, 2]
    # the nightly stages have the one night, which nobody ran here: the counts say so
    assert counts["cart_candidates"] == [1, 0] and counts["cart_gate"] == [1, 0]
