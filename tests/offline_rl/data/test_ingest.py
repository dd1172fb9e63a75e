import datetime as dt
import os

import polars as pl
import pytest

from offline_rl.data.ingest import (
    IngestConfig,
    parse_partition_key,
    partition_folder,
    read_partition,
)
from offline_rl.data.readers import landing_format
from offline_rl.data.rules import value_rules
from offline_rl.data.schemas import CLICKSTREAM, SOURCES
from offline_rl.data.warehouse import Warehouse
from offline_rl.pipeline import ingest_partition

DAY = dt.date(2026, 10, 2)


def _folder(paths):
    return paths.landing / "clickstream" / f"date={DAY}"


def _load(paths, schema=CLICKSTREAM, day=DAY):
    load = read_partition(paths.landing, schema, day)
    assert load.reconciled, load.describe()
    return load


def test_clean_partition_loads_every_row(landing_paths):
    load = _load(landing_paths)
    assert load.rows_read > 0
    assert load.rows.height == load.rows_read
    assert load.quarantine.is_empty() and load.duplicates == 0
    assert set(load.rows["partition_date"].unique()) == {DAY}
    per_file = load.rows.group_by("_source_file").agg(
        first=pl.col("_source_row").min(), last=pl.col("_source_row").max(), n=pl.len())
    assert per_file.height == len(load.files) == 2  # the day's file and the spill-over
    assert (per_file["first"] == 1).all() and (per_file["last"] == per_file["n"]).all()


def test_every_simulated_dataset_passes_the_value_rules(landing_paths):
    for schema in SOURCES.values():
        load = _load(landing_paths, schema)
        assert load.rows_read > 0, schema.name
        assert load.quarantine.is_empty(), (schema.name, load.quarantine["reason"].head(3))


def test_value_rules_name_real_columns_and_match_the_action_counts():
    import importlib

    from offline_rl.data.schemas import Column, SourceSchema, ValueRule

    assert all(value_rules(s) == dict(s.rules) for s in SOURCES.values())
    with pytest.raises(ValueError, match="value rules of toy name unknown column"):
        SourceSchema("toy", "toy", "", (Column("id", pl.String(), ""),), key="id",
                     time_column="id", rules={"nope": ValueRule(minimum=0)})
    for module, dataset in [("cart", "cart"), ("inventory", "inventory_orders"),
                            ("ads", "ads"), ("pricing", "pricing_changes")]:
        domain = importlib.import_module(f"offline_rl.domains.{module}").DOMAIN
        assert SOURCES[dataset].rules["action"].allowed == tuple(range(domain.n_actions))
    recommendation = importlib.import_module("offline_rl.domains.recommendation").DOMAIN
    assert SOURCES["clickstream"].rules["category_id"].allowed == \
        tuple(range(recommendation.n_actions))


def test_bad_rows_are_quarantined_with_file_row_and_reason(landing_paths):
    folder = _folder(landing_paths)
    good = pl.read_parquet(next(folder.glob("part-*.parquet")))
    bad = good.head(3).with_columns(
        event_id=pl.Series(["x1", "x2", None]),
        behavior_prob=pl.Series([1.5, 0.5, 0.5]),
        event_ts=pl.Series([good["event_ts"][0], dt.datetime(2026, 10, 9, tzinfo=dt.UTC),
                            good["event_ts"][0]]),
    )
    bad.write_parquet(folder / "late.parquet")
    load = _load(landing_paths)
    q = load.quarantine.sort("row_number")
    assert q["file"].to_list() == ["clickstream/date=2026-10-02/late.parquet"] * 3
    assert q["row_number"].to_list() == [1, 2, 3]  # 1-based data rows of the file
    assert "behavior_prob 1.5 outside (0, 1]" in q["reason"][0]
    assert "outside partition 2026-10-02" in q["reason"][1]
    assert "null event_id" in q["reason"][2]
    assert q["record"][0].startswith('{"event_id":"x1"')


def test_unreadable_and_mismatched_files_are_quarantined_whole(landing_paths):
    folder = _folder(landing_paths)
    (folder / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    pl.DataFrame({"event_id": ["a"]}).write_parquet(folder / "narrow.parquet")
    (folder / "notes.txt").write_text("hello")
    load = _load(landing_paths)
    rejected = load.quarantine.filter(pl.col("row_number").is_null()).sort("file")
    assert rejected["file"].to_list() == ["clickstream/date=2026-10-02/corrupt.parquet",
                                          "clickstream/date=2026-10-02/narrow.parquet",
                                          "clickstream/date=2026-10-02/notes.txt"]
    assert "unreadable parquet" in rejected["reason"][0]
    assert "missing column(s)" in rejected["reason"][1]
    assert "unsupported file type" in rejected["reason"][2]
    assert load.rows.height > 0 and load.rejected_files == 3


def test_duplicates_within_across_files_and_redeliveries_are_kept_once(landing_paths):
    folder = _folder(landing_paths)
    first = next(folder.glob("part-*.parquet"))
    original = pl.read_parquet(first)
    before = _load(landing_paths)
    # within one file, across files (another format) and a later re-delivery of the same file
    pl.concat([original.head(5), original.head(5)]).write_parquet(folder / "dup-within.parquet")
    original.slice(10, 7).write_csv(folder / "dup-across.csv")
    (folder / "zz-redelivery.parquet").write_bytes(first.read_bytes())
    load = _load(landing_paths)
    assert load.duplicates == 10 + 7 + original.height
    assert load.rows["event_id"].n_unique() == load.rows.height == before.rows.height
    # the first delivery (by file name, then row) is the one kept
    kept = load.rows.filter(pl.col("event_id") == original["event_id"][0])
    assert kept["_source_file"].to_list() == ["clickstream/date=2026-10-02/dup-within.parquet"]
    assert kept["_source_row"].to_list() == [1]
    assert load.quarantine.is_empty()


def test_same_id_with_different_content_is_quarantined_not_dropped(landing_paths):
    folder = _folder(landing_paths)
    original = pl.read_parquet(next(folder.glob("part-*.parquet")))
    changed = original.head(2).with_columns(page=pl.col("page") + 1)
    changed.write_parquet(folder / "zz-changed.parquet")
    load = _load(landing_paths)
    assert load.duplicates == 0
    q = load.quarantine
    assert q["row_number"].to_list() == [1, 2]
    assert q["reason"][0].startswith(f"duplicate event_id {original['event_id'][0]} with "
                                     "different content (kept clickstream/date=2026-10-02/")


def _content(wh: Warehouse, day: dt.date) -> tuple:
    return (wh.digest("raw_clickstream", day), wh.digest("quarantine", day))


def test_reloading_gives_identical_content_even_after_other_partitions(landing_paths):
    folder = _folder(landing_paths)
    pl.DataFrame({"event_id": ["a"]}).write_parquet(folder / "narrow.parquet")
    original = pl.read_parquet(next(folder.glob("part-*.parquet")))
    original.head(3).with_columns(price=pl.lit(-1.0)).write_csv(folder / "neg.csv")
    original.head(4).write_parquet(folder / "dup.parquet")
    wh = Warehouse(landing_paths.warehouse)
    ingest_partition(landing_paths, CLICKSTREAM, DAY)
    once = _content(wh, DAY)
    whole = wh.digest("raw_clickstream")
    other = DAY - dt.timedelta(days=1)
    ingest_partition(landing_paths, CLICKSTREAM, other)
    other_content = _content(wh, other)
    for _ in range(2):
        ingest_partition(landing_paths, CLICKSTREAM, DAY)
    ingest_partition(landing_paths, CLICKSTREAM, other)
    assert once[0][0] > 0 and once[1][0] == 3 + 1
    assert _content(wh, DAY) == once
    assert _content(wh, other) == other_content
    assert wh.digest("raw_clickstream") != whole  # the other day is in the table too
    # a change in the landing data changes the digest (the digest can tell content apart)
    (folder / "neg.csv").unlink()
    ingest_partition(landing_paths, CLICKSTREAM, DAY)
    assert _content(wh, DAY) != once


def test_empty_partition_loads_nothing_and_says_so(landing_paths):
    load = _load(landing_paths, day=dt.date(2026, 12, 1))
    assert load.files == [] and load.rows.height == 0 and load.rows_read == 0
    assert load.empty and load.describe() == "no landing files: nothing loaded"
    loaded = ingest_partition(landing_paths, CLICKSTREAM, dt.date(2026, 12, 1))
    assert loaded.empty


def test_temporary_files_are_skipped_and_listed(landing_paths):
    folder = _folder(landing_paths)
    (folder / ".part-x.parquet.tmp").write_bytes(b"half written")
    (folder / "_SUCCESS").write_text("")
    load = _load(landing_paths)
    assert load.skipped == [".part-x.parquet.tmp", "_SUCCESS"]
    assert load.quarantine.is_empty()


def test_symlinks_out_of_the_landing_zone_are_refused(landing_paths, tmp_path):
    folder = _folder(landing_paths)
    outside = tmp_path / "outside.parquet"
    pl.read_parquet(next(folder.glob("part-*.parquet"))).head(2).write_parquet(outside)
    os.symlink(outside, folder / "escape.parquet")
    os.symlink(next(folder.glob("part-*.parquet")), folder / "inside.parquet")
    load = _load(landing_paths)
    reasons = dict(zip(load.quarantine["file"], load.quarantine["reason"], strict=True))
    assert reasons == {"clickstream/date=2026-10-02/escape.parquet":
                       "file rejected: symbolic link to a location outside the landing zone"}
    assert load.duplicates > 0  # the link inside the zone is read (a re-delivery)
    # a partition folder that is itself a link out of the zone is refused outright
    os.symlink(tmp_path, partition_folder(landing_paths.landing, CLICKSTREAM,
                                          dt.date(2026, 11, 1)))
    with pytest.raises(ValueError, match="outside the landing zone"):
        read_partition(landing_paths.landing, CLICKSTREAM, dt.date(2026, 11, 1))


def test_partition_keys_and_file_names_are_validated():
    assert parse_partition_key("2026-10-02") == DAY
    for bad in ["2026-10-2", "../2026-10-02", "2026-10-02/..", "2026-13-01", "", None]:
        with pytest.raises(ValueError, match="invalid partition key"):
            parse_partition_key(bad)
    with pytest.raises(ValueError, match="must be a date"):
        partition_folder(DAY, CLICKSTREAM, dt.datetime(2026, 10, 2))  # type: ignore[arg-type]
    assert [landing_format(n) for n in ["a.parquet", "a.csv.gz", "a.jsonl", ".csv", "a.json",
                                        "a.csv.bz2"]] == [
        "parquet", "csv", "jsonl", None, None, None]


def test_config_is_validated():
    with pytest.raises(ValueError, match="timezone-aware"):
        IngestConfig(now=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="max_string_length"):
        IngestConfig(max_string_length=0)
