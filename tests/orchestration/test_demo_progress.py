"""The demo's progress from Dagster's step events, its partition calendar and its notes."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import uuid

import dagster as dg

from orchestration.cli import Progress, data_home_note, demo_calendar
from orchestration.partitions import FIRST_DAY_ENV, FIRST_NIGHT_ENV, LAST_DAY_ENV, load_calendar


@dg.asset
def first() -> int:
    return 1


@dg.asset
def second(first: int) -> int:
    dg.get_dagster_logger().info("halfway through second")
    return first + 1


def test_progress_prints_a_line_per_finished_step_as_the_run_emits_it():
    stream = io.StringIO()
    progress = Progress(total=3, stream=stream)
    seen_during_run: list[int] = []

    @dg.asset(deps=[second])
    def third() -> None:  # runs after both steps above: their lines must already be out
        seen_during_run.append(progress.done)

    job = dg.Definitions(assets=[first, second, third]).resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()
    run_id = str(uuid.uuid4())
    instance.add_event_listener(run_id, lambda entry: progress.on_event(entry, "2026-10-01"))
    assert job.execute_in_process(instance=instance, run_id=run_id).success
    assert seen_during_run == [2]
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:4] == ["1/3", "first", "2026-10-01", "done"]
    assert ", 2 step(s) left)" in lines[0] and ", 0 step(s) left)" in lines[2]
    assert "s elapsed" in lines[0]
    assert progress.failed == 0


def test_the_demo_writes_its_days_to_the_data_home_and_the_environment(tmp_path, monkeypatch):
    for name in (FIRST_DAY_ENV, LAST_DAY_ENV, FIRST_NIGHT_ENV):
        monkeypatch.setenv(name, "")  # restored (unset) after the test; the demo sets them
    days = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(20)]
    calendar = demo_calendar(tmp_path, days, first_night=days[-1])
    assert (calendar.first_day, calendar.last_day) == (days[0], days[-1])
    assert os.environ[FIRST_DAY_ENV] == "2026-10-01"
    assert os.environ[LAST_DAY_ENV] == "2026-10-20"
    assert os.environ[FIRST_NIGHT_ENV] == "2026-10-20"
    assert json.loads((tmp_path / "calendar.json").read_text()) == {
        "first_day": "2026-10-01", "last_day": "2026-10-20", "first_night": "2026-10-20"}
    # what `make ui` loads from the home: exactly the demo's 20 days, and its one night
    assert load_calendar({}, tmp_path).first_day == days[0]
    assert load_calendar({}, tmp_path).nights_from == days[-1]
    # a later demo over fewer days keeps the days and nights an earlier one materialized
    later = demo_calendar(tmp_path, days[5:8], first_night=days[7])
    assert (later.first_day, later.last_day, later.nights_from) == (days[0], days[-1], days[7])


def test_commands_reading_exports_name_the_data_home_they_looked_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OFFLINE_RL_HOME", raising=False)
    monkeypatch.delenv("OFFLINE_RL_EXPORTS", raising=False)
    args = argparse.Namespace(command="exports", home=None, landing=None, exports=None)
    note = data_home_note(args)
    assert note is not None
    assert f"data home {tmp_path / '.data'}" in note
    assert "the default ./.data of the current directory" in note
    assert "--home DIR or OFFLINE_RL_HOME=DIR" in note
    monkeypatch.setenv("OFFLINE_RL_HOME", str(tmp_path / "elsewhere"))
    assert "($OFFLINE_RL_HOME)" in data_home_note(args)
    (tmp_path / "elsewhere" / "exports").mkdir(parents=True)
    assert data_home_note(args) is None
    assert data_home_note(argparse.Namespace(command="simulate", home=None)) is None


def test_the_installed_command_run_elsewhere_says_which_data_home_it_read(tmp_path):
    """The same note end to end: the `offline-rl` entry point, run from a folder with no data
    home, names the folder it looked in before its own answer."""
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items()
           if k not in ("OFFLINE_RL_HOME", "OFFLINE_RL_EXPORTS")}
    command = Path(sys.executable).parent / "offline-rl"
    proc = subprocess.run([str(command), "exports", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert f"note: {tmp_path / '.data' / 'exports'} does not exist; data home " \
           f"{tmp_path / '.data'} (the default ./.data of the current directory)" in proc.stderr
