import datetime as dt

import polars as pl

from offline_rl.data.ingest import read_partition
from offline_rl.data.schemas import CLICKSTREAM
from offline_rl.data.warehouse import Warehouse
from offline_rl.pipeline import ingest_partition

DAY = dt.date(2026, 10, 2)


def _folder(paths):
    return paths.landing / "clickstream" / f"date={DAY}"


def test_clean_partition_loads_every_row(landing_paths):
    load = read_partition(landing_paths.landing, CLICKSTREAM, DAY)
    assert load.rows_read > 0
    assert load.rows.height == load.rows_read
    assert load.quarantine.is_empty() and load.duplicates == 0 and load.reconciled
    assert set(load.rows["partition_date"].unique()) == {DAY}


def test_bad_rows_are_quarantined_with_file_row_and_reason(landing_paths):
    folder = _folder(landing_paths)
    good = pl.read_parquet(next(folder.glob("*.parquet")))
    bad = good.head(3).with_columns(
        event_id=pl.Series(["x1", "x2", None]),
        behavior_prob=pl.Series([1.5, 0.5, 0.5]),
        event_ts=pl.Series([good["event_ts"][0], dt.datetime(2026, 10, 9, tzinfo=dt.UTC),
                            good["event_ts"][0]]),
    )
    bad.write_parquet(folder / "late.parquet")
    load = read_partition(landing_paths.landing, CLICKSTREAM, DAY)
    q = load.quarantine.sort("row_number")
    assert q["file"].to_list() == ["clickstream/date=2026-10-02/late.parquet"] * 3
    assert q["row_number"].to_list() == [0, 1, 2]
    assert "behavior_prob 1.5 outside (0, 1]" in q["reason"][0]
    assert "outside partition 2026-10-02" in q["reason"][1]
    assert "null event_id" in q["reason"][2]
    assert q["record"][0].startswith("{")
    assert load.reconciled


def test_unreadable_and_mismatched_files_are_quarantined_whole(landing_paths):
    folder = _folder(landing_paths)
    (folder / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    pl.DataFrame({"event_id": ["a"]}).write_parquet(folder / "narrow.parquet")
    load = read_partition(landing_paths.landing, CLICKSTREAM, DAY)
    rejected = load.quarantine.filter(pl.col("row_number").is_null()).sort("file")
    assert rejected["file"].to_list() == ["clickstream/date=2026-10-02/corrupt.parquet",
                                          "clickstream/date=2026-10-02/narrow.parquet"]
    assert "unreadable parquet" in rejected["reason"][0]
    assert "missing column(s)" in rejected["reason"][1]
    assert load.rows.height > 0 and load.reconciled


def test_redelivered_events_are_dropped_as_duplicates(landing_paths):
    folder = _folder(landing_paths)
    first = next(folder.glob("*.parquet"))
    pl.read_parquet(first).head(10).write_parquet(folder / "zz-redelivery.parquet")
    load = read_partition(landing_paths.landing, CLICKSTREAM, DAY)
    assert load.duplicates == 10
    assert load.rows["event_id"].n_unique() == load.rows.height
    assert load.reconciled


def test_replacing_a_partition_twice_gives_identical_content(landing_paths):
    ingest_partition(landing_paths, CLICKSTREAM, DAY)
    wh = Warehouse(landing_paths.warehouse)
    first = wh.read_partitions("raw_clickstream", DAY, DAY)
    ingest_partition(landing_paths, CLICKSTREAM, DAY)
    second = wh.read_partitions("raw_clickstream", DAY, DAY)
    assert first.height > 0
    assert first.equals(second)


def test_empty_partition_loads_nothing_and_says_so(landing_paths):
    load = read_partition(landing_paths.landing, CLICKSTREAM, dt.date(2026, 12, 1))
    assert load.files == [] and load.rows.height == 0 and load.rows_read == 0
