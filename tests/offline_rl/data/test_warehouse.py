import datetime as dt

import polars as pl
import pytest

from offline_rl.data.warehouse import (
    KeyRange,
    RangeSummary,
    Warehouse,
    WarehouseError,
    sql_text,
)

DAY = dt.date(2026, 10, 1)


def test_identifiers_are_validated_and_values_never_inlined():
    assert "raw_x" in sql_text("warehouse/delete_partition", table="raw_x")
    with pytest.raises(WarehouseError, match="invalid identifier"):
        sql_text("warehouse/delete_partition", table="raw_x; DROP TABLE y")
    with pytest.raises(WarehouseError, match="no identifier"):
        sql_text("warehouse/table_exists", table="raw_x")
    with pytest.raises(WarehouseError, match="not found"):
        sql_text("nope/missing")


def test_failed_replace_leaves_previous_content(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    good = pl.DataFrame({"partition_date": [DAY, DAY], "v": [1, 2]})
    wh.replace_partition("t", good, day=DAY)
    incompatible = pl.DataFrame({"partition_date": [DAY], "v": ["not a number"]})
    with pytest.raises(WarehouseError):
        wh.replace_partition("t", incompatible, day=DAY)
    assert wh.read_partitions("t", DAY, DAY)["v"].to_list() == [1, 2]


def test_replace_only_touches_its_partition(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    other = DAY + dt.timedelta(days=1)
    wh.replace_partition("t", pl.DataFrame({"partition_date": [DAY], "v": [1]}), day=DAY)
    wh.replace_partition("t", pl.DataFrame({"partition_date": [other], "v": [2]}), day=other)
    wh.replace_partition("t", pl.DataFrame({"partition_date": [DAY], "v": [3]}), day=DAY)
    assert wh.read_partitions("t", DAY, other).sort("v")["v"].to_list() == [2, 3]


def test_a_reader_may_ask_for_some_columns_only(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    rows = pl.DataFrame({"partition_date": [DAY, DAY], "v": [2, 1], "w": ["b", "a"],
                         "x": [0.5, 1.5]})
    wh.replace_partition("t", rows, day=DAY)
    some = wh.read_partitions("t", DAY, DAY, ["x", "v", "partition_date", "not_there"])
    assert some.columns == ["partition_date", "v", "x"]  # the table's order, absent names left out
    assert some.rows() == [(DAY, 1, 1.5), (DAY, 2, 0.5)]  # ordered as a full read is
    assert wh.read_partitions("t", DAY, DAY).select("partition_date", "v", "x").equals(some)


def test_key_ranges_are_disjoint_and_hold_every_row_once(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    rows = pl.DataFrame({"partition_date": [DAY] * 40 + [DAY + dt.timedelta(days=1)] * 20,
                         "session": [None if i % 17 == 0 else f"s{i % 13:02d}"
                                     for i in range(60)], "v": list(range(60))})
    for day, part in rows.group_by("partition_date"):
        wh.replace_partition("t", part, day=day[0])
    end = DAY + dt.timedelta(days=1)
    ranges = [KeyRange("session", None, "s04"), KeyRange("session", "s04", "s09", False),
              KeyRange("session", "s09", None, False)]
    parts = [wh.read_as_written("t", DAY, end, r) for r in ranges]
    assert [p.height for p in parts] == [rows.filter(pl.col("session").is_null()
                                                     | (pl.col("session") < "s04")).height,
                                         rows.filter((pl.col("session") >= "s04")
                                                     & (pl.col("session") < "s09")).height,
                                         rows.filter(pl.col("session") >= "s09").height]
    assert pl.concat(parts).sort("v").equals(wh.read_partitions("t", DAY, end).sort("v"))
    assert wh.read_as_written("t", DAY, end, KeyRange("session")).sort("v").equals(
        wh.read_as_written("t", DAY, end).sort("v"))  # an unbounded range is everything
    counts = wh.key_counts("t", DAY, end, "session")
    assert counts["key"][0] is None and counts["n"].sum() == 60  # nulls first
    assert counts["key"].drop_nulls().is_sorted()
    summary = wh.summarize_partitions("t", DAY, end, end)
    assert (summary.rows, summary.day_rows, summary.last_day) == (60, 20, end)
    assert wh.summarize_partitions("nothing", DAY, end, DAY) == RangeSummary(0, 0, None)
    with pytest.raises(WarehouseError, match="invalid identifier"):
        wh.read_as_written("t", DAY, end, KeyRange("session; drop"))


def test_rows_read_as_written_follow_the_days_then_the_last_write(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    later = DAY + dt.timedelta(days=1)
    wh.replace_partition("t", pl.DataFrame({"partition_date": [later] * 3, "v": [9, 7, 8]}),
                         day=later)
    wh.replace_partition("t", pl.DataFrame({"partition_date": [DAY] * 3, "v": [3, 1, 2]}),
                         day=DAY)
    assert wh.read_as_written("t", DAY, later)["v"].to_list() == [3, 1, 2, 9, 7, 8]
    # a day written again: its new rows in their new order, still before the later day's
    wh.replace_partition("t", pl.DataFrame({"partition_date": [DAY] * 2, "v": [5, 4]}), day=DAY)
    assert wh.read_as_written("t", DAY, later)["v"].to_list() == [5, 4, 9, 7, 8]
    assert wh.read_as_written("nothing", DAY, later).is_empty()


def test_missing_table_reads_empty(tmp_path):
    assert Warehouse(tmp_path / "w.duckdb").read_partitions("nothing", DAY, DAY).is_empty()


def test_digest_ignores_row_order_and_sees_any_change(tmp_path):
    a, b = Warehouse(tmp_path / "a.duckdb"), Warehouse(tmp_path / "b.duckdb")
    rows = pl.DataFrame({"partition_date": [DAY] * 3, "v": [1.5, 2.25, None], "s": ["x", "y", "z"]})
    a.replace_partition("t", rows, day=DAY)
    b.replace_partition("t", rows.reverse(), day=DAY)
    assert a.digest("t", DAY) == b.digest("t", DAY) == a.digest("t")
    assert a.digest("t", DAY)[0] == 3
    b.replace_partition("t", rows.with_columns(v=pl.Series([1.5, 2.25, 0.0])), day=DAY)
    assert a.digest("t", DAY) != b.digest("t", DAY)
    assert Warehouse(tmp_path / "none.duckdb").digest("t") == (0, "")


def test_crash_point_kills_at_the_named_hit_only():
    import os
    import signal
    import subprocess
    import sys

    code = ("from offline_rl.crash import crash_point\n"
            "for i in range(3):\n"
            "    crash_point('x.y'); crash_point('other'); print(i, flush=True)\n")
    env = {**os.environ, "OFFLINE_RL_CRASH_AT": "x.y@2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == -signal.SIGKILL and out.stdout.split() == ["0"]
    env["OFFLINE_RL_CRASH_AT"] = "nothing"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["0", "1", "2"]


def test_new_columns_are_added_to_an_existing_table(tmp_path):
    """A table written by an earlier version gains the columns new rows bring; its older
    rows read NULL there."""
    wh = Warehouse(tmp_path / "w.duckdb")
    other = DAY + dt.timedelta(days=1)
    wh.replace_partition("t", pl.DataFrame({"partition_date": [DAY], "v": [1]}), day=DAY)
    wh.replace_partition("t", pl.DataFrame({"partition_date": [other], "v": [2],
                                            "demand": [3.5]}), day=other)
    rows = wh.read_partitions("t", DAY, other).sort("v")
    assert rows["demand"].to_list() == [None, 3.5]
    odd = pl.DataFrame({"partition_date": [DAY], "v": [1], "when": [dt.datetime(2026, 1, 1)]},
                       schema_overrides={"when": pl.Datetime("us", "UTC")})
    with pytest.raises(WarehouseError, match="cannot add the new column 'when'"):
        wh.replace_partition("t", odd, day=DAY)
    assert wh.read_partitions("t", DAY, DAY)["v"].to_list() == [1]  # rolled back


def test_readers_share_the_lock_and_a_writer_waits_for_them(tmp_path):
    import threading

    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("t", pl.DataFrame({"partition_date": [DAY], "v": [1]}), day=DAY)
    both_in = threading.Barrier(3, timeout=10)  # passes only while both readers are inside
    release = threading.Event()
    events: list[str] = []

    def hold_a_read() -> None:
        with wh.connect(read_only=True) as con:
            both_in.wait()
            release.wait(10)
            events.append(f"read {con.sql('SELECT max(v) FROM t').fetchall()[0][0]}")

    def write() -> None:
        wh.replace_partition("t", pl.DataFrame({"partition_date": [DAY], "v": [2]}), day=DAY)
        events.append("written")

    def read_through_the_api() -> None:
        assert wh.table_exists("t")
        assert wh.read_partitions("t", DAY, DAY)["v"].to_list() == [1]
        assert wh.query("warehouse/select_partition_range", table="t", start=DAY,
                        end=DAY).height == 1
        events.append("api read")

    readers = [threading.Thread(target=hold_a_read) for _ in range(2)]
    for thread in readers:
        thread.start()
    both_in.wait()  # both readers hold the shared lock at once
    api = threading.Thread(target=read_through_the_api)
    api.start()
    api.join(10)
    assert not api.is_alive() and events == ["api read"]  # readers do not wait for readers
    writer = threading.Thread(target=write)
    writer.start()
    writer.join(0.5)
    assert writer.is_alive() and "written" not in events  # the writer waits for the readers
    release.set()
    for thread in [*readers, writer]:
        thread.join(10)
    assert events[1:] == ["read 1", "read 1", "written"]
    assert wh.read_partitions("t", DAY, DAY)["v"].to_list() == [2]


def test_readers_of_a_missing_warehouse_create_nothing(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    assert not wh.table_exists("t") and wh.read_partitions("t", DAY, DAY).is_empty()
    with pytest.raises(WarehouseError, match="does not exist yet"):
        wh.query("warehouse/table_exists", table_name="t")
    assert list(tmp_path.iterdir()) == []


def test_duckdbs_memory_is_bounded_and_a_bad_limit_is_named(tmp_path, monkeypatch):
    from offline_rl.data.warehouse import MEMORY_LIMIT_ENV

    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("t", pl.DataFrame({"partition_date": [DAY], "v": [1]}), day=DAY)
    with wh.connect(read_only=True) as con:
        assert con.sql("SELECT current_setting('memory_limit')").fetchall() == [("953.6 MiB",)]
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "2GB")
    with wh.connect(read_only=True) as con:
        assert con.sql("SELECT current_setting('memory_limit')").fetchall() == [("1.8 GiB",)]
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(WarehouseError, match=r"\$OFFLINE_RL_DUCKDB_MEMORY_LIMIT='lots' is not "
                                             r"a DuckDB memory limit"):
        wh.read_partitions("t", DAY, DAY)
