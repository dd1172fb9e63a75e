"""The landing sensor requests ingestion for new or changed landing days only."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

from offline_rl.shop import write_landing
from orchestration.resources import DataHome
from orchestration.sensors import landing_sensor


def _tick(home, cursor=None):
    ctx = dg.build_sensor_context(cursor=cursor, resources={"data_home": DataHome(home=str(home))})
    return landing_sensor(ctx), ctx


def test_new_days_are_requested_once_and_changes_again(tmp_path):
    home = tmp_path / "home"
    empty, _ = _tick(home)
    assert isinstance(empty, dg.SkipReason)
    write_landing(home, days=2, start=dt.date(2026, 5, 1), seed=0, events_per_day=300)
    requests, ctx = _tick(home)
    keys = {r.partition_key for r in requests}
    assert {"2026-05-01", "2026-05-02"} <= keys
    again, _ = _tick(home, ctx.cursor)
    assert isinstance(again, dg.SkipReason)
    # a late file for one day re-requests that day only
    late = home / "landing" / "cart" / "date=2026-05-01" / "late.parquet"
    late.write_bytes((home / "landing" / "cart" / "date=2026-05-01").glob("*.parquet")
                     .__next__().read_bytes())
    changed, ctx2 = _tick(home, ctx.cursor)
    assert [r.partition_key for r in changed] == ["2026-05-01"]
    assert json.loads(ctx2.cursor)["2026-05-01"] != json.loads(ctx.cursor)["2026-05-01"]


def test_ingesting_a_day_refreshes_the_transitions_it_completes():
    from offline_rl.domains import all_domains
    from orchestration.sensors import refresh_days

    days = refresh_days(dt.date(2026, 5, 10))
    reach = max(d.lookahead_days for d in all_domains())
    assert days[-1] == dt.date(2026, 5, 10) and len(days) == reach + 1
    assert days[0] == dt.date(2026, 5, 10) - dt.timedelta(days=reach)


def _data_run_succeeded(partition: str | None) -> object:
    from orchestration.sensors import nightly_after_data_sensor

    tags = {"dagster/partition": partition} if partition else {}
    run = dg.DagsterRun(job_name="nightly_data", run_id="data-run-1", tags=tags)
    event = dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_SUCCESS.value,
                            job_name="nightly_data")
    with dg.instance_for_test() as instance:
        ctx = dg.build_run_status_sensor_context(
            sensor_name="nightly_after_data_sensor", dagster_event=event,
            dagster_instance=instance, dagster_run=run)
        return nightly_after_data_sensor(ctx)


def test_a_nights_data_starts_its_nightly_stages_for_the_same_day():
    from orchestration.partitions import nights

    request = _data_run_succeeded("2026-05-10")
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-05-10" and request.run_key == "data-run-1:nightly"
    before = (nights.start - dt.timedelta(days=1)).date().isoformat()
    skipped = _data_run_succeeded(before)
    assert isinstance(skipped, dg.SkipReason) and "before the first night" in str(
        skipped.skip_message)
    assert isinstance(_data_run_succeeded(None), dg.SkipReason)
