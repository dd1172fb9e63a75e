"""The landing sensor on a landing zone in object storage (an fsspec ``memory://`` filesystem)."""

import datetime as dt

import dagster as dg

from offline_rl.shop import write_landing
from orchestration.resources import DataHome
from orchestration.sensors import landing_sensor

DAY = dt.date(2026, 10, 2)
URI = "memory://shop-bucket/landing"


def test_landing_sensor_sees_new_and_changed_remote_files(memory_fs, tmp_path):
    def tick(cursor=None):
        resource = DataHome(home=str(tmp_path / "h"), landing=URI)
        ctx = dg.build_sensor_context(cursor=cursor, resources={"data_home": resource})
        return landing_sensor(ctx), ctx

    assert isinstance(tick()[0], dg.SkipReason)
    write_landing(tmp_path, days=2, start=dt.date(2026, 10, 1), seed=0, events_per_day=300)
    for path in (tmp_path / "landing").rglob("*.parquet"):
        memory_fs.pipe_file(f"shop-bucket/{path.relative_to(tmp_path).as_posix()}",
                            path.read_bytes())
    requests, ctx = tick()
    assert {r.partition_key for r in requests} >= {"2026-10-01", "2026-10-02"}
    assert isinstance(tick(ctx.cursor)[0], dg.SkipReason)
    # temporaries and anything below a day's folder are not landing files
    memory_fs.pipe_file(f"shop-bucket/landing/cart/date={DAY}/.part.tmp", b"in flight")
    memory_fs.pipe_file(f"shop-bucket/landing/cart/date={DAY}/deeper/x.csv", b"not listed")
    assert isinstance(tick(ctx.cursor)[0], dg.SkipReason)
    # a late file for one day re-requests that day only
    memory_fs.pipe_file(f"shop-bucket/landing/cart/date={DAY}/late.csv", b"event_id\n")
    changed, _ = tick(ctx.cursor)
    assert [r.partition_key for r in changed] == [DAY.isoformat()]
