"""A non-editable install finds its SQL: the wheel carries ``sql/**.sql`` and, run from outside
the checkout, the installed library reads a statement and ingests a simulated landing day."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_FILES = ["pyproject.toml", "README.md", "offline_rl", "orchestration", "assets", "sql"]

INGEST_ONE_DAY = """
import datetime as dt, json, sys
from pathlib import Path

import offline_rl, sql
from offline_rl.data.ingest import load_partition
from offline_rl.data.schemas import SOURCES
from offline_rl.data.warehouse import Warehouse, sql_text
from offline_rl.paths import DataPaths
from offline_rl.shop import write_landing

day = dt.date(2026, 10, 1)
paths = DataPaths(Path(sys.argv[1]))
write_landing(paths.home, days=1, start=day, seed=1, events_per_day=500)
loaded, stored = {}, {}
for name, schema in SOURCES.items():
    loaded[name] = load_partition(paths.landing, paths.warehouse, schema, day).rows.height
    stored[name] = Warehouse(paths.warehouse).digest(schema.table, day)[0]
print(json.dumps({"offline_rl": offline_rl.__file__, "sql": sql.__file__,
                  "statement": sql_text("warehouse/table_exists"),
                  "loaded": loaded, "stored": stored}))
"""


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                   check=True, capture_output=True, text=True)


@pytest.mark.slow
def test_a_wheel_install_reads_its_sql_and_ingests_a_day_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # a copy, so the build writes nothing into the checkout
    source.mkdir()
    for name in PACKAGE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels),
         str(source))
    (wheel,) = wheels.glob("offline_rl_shop-*.whl")

    statements = {p.relative_to(ROOT).as_posix() for p in (ROOT / "sql").rglob("*.sql")}
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("sql/") and n.endswith(".sql")}
    assert statements and shipped == statements

    _pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", INGEST_ONE_DAY, str(outside / "home")],
                         cwd=outside, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["offline_rl"]).is_relative_to(target)
    assert Path(result["sql"]).is_relative_to(target)
    assert result["statement"].startswith("SELECT")
    assert result["loaded"]["clickstream"] > 0
    assert result["stored"] == result["loaded"]
