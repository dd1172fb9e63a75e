"""An unexpected key in a JSON line is a problem of that row; an unexpected column in a file
with a header (CSV, Parquet) still rejects the whole file."""

import datetime as dt
import json

import polars as pl
import pytest

from offline_rl.data.ingest import IngestConfig, read_partition
from offline_rl.data.schemas import CLICKSTREAM

DAY = dt.date(2026, 10, 1)
NOW = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)


@pytest.fixture
def few(clean: pl.DataFrame) -> pl.DataFrame:
    """Six valid clickstream events of DAY."""
    return clean.head(6)


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "landing" / "clickstream" / f"date={DAY}"
    path.mkdir(parents=True)
    return path


def load(folder):
    result = read_partition(folder.parents[1], CLICKSTREAM, DAY, IngestConfig(now=NOW))
    assert result.reconciled, result.describe()
    return result


def _lines(few: pl.DataFrame) -> list[str]:
    rows = few.with_columns(pl.col("event_ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"))
    return [json.dumps(r) for r in rows.to_dicts()]


@pytest.mark.parametrize("terminated", [True, False])  # the fast path and the line-by-line one
def test_an_extra_key_quarantines_that_json_line_only(folder, few, terminated):
    lines = _lines(few)
    lines[1] = json.dumps({**json.loads(lines[1]), "coupon": "x"})
    lines[3] = json.dumps({"zzz": 1, **json.loads(lines[3]), "aaa": [1, 2]})
    text = "\n".join(lines) + ("\n" if terminated else "")
    (folder / "a.jsonl").write_text(text)
    result = load(folder)
    q = result.quarantine
    assert result.rejected_files == 0
    got = dict(zip(q["row_number"], q["reason"], strict=True))
    assert got[2] == "unexpected key(s) coupon"
    assert got[4] == "unexpected key(s) zzz, aaa"
    assert json.loads(q.filter(pl.col("row_number") == 2)["record"][0])["coupon"] == "x"
    expected_loaded = few.height - 2 - (0 if terminated else 1)
    assert result.rows.height == expected_loaded
    assert 2 not in result.rows["_source_row"].to_list()


def test_a_missing_and_an_extra_key_are_both_named(folder, few):
    lines = _lines(few)
    record = {k: v for k, v in json.loads(lines[0]).items() if k != "margin"}
    lines[0] = json.dumps({**record, "extra": 1})
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    result = load(folder)
    assert result.quarantine.select("row_number", "reason").rows() == [
        (1, "missing key(s) margin; unexpected key(s) extra")]
    assert result.rows.height == few.height - 1


def test_every_json_line_with_an_extra_key_is_quarantined_row_by_row(folder, few):
    (folder / "a.jsonl").write_text(few.with_columns(extra=pl.lit(1)).write_ndjson())
    result = load(folder)
    assert result.rejected_files == 0 and result.rows.is_empty()
    assert result.quarantine["row_number"].to_list() == list(range(1, few.height + 1))
    assert set(result.quarantine["reason"]) == {"unexpected key(s) extra"}


def test_a_key_missing_from_every_json_line_still_rejects_the_file(folder, few):
    (folder / "a.jsonl").write_text(few.drop("margin").write_ndjson())
    result = load(folder)
    assert result.quarantine.select("row_number", "reason").rows() == [
        (None, "file rejected: missing key(s) margin")]


@pytest.mark.parametrize("name", ["a.csv", "a.parquet"])
def test_an_extra_column_in_a_header_still_rejects_the_whole_file(folder, few, name):
    frame = few.with_columns(extra=pl.lit(1))
    if name.endswith(".csv"):
        (folder / name).write_text(frame.write_csv())
    else:
        frame.write_parquet(folder / name)
    result = load(folder)
    assert result.quarantine.select("row_number", "reason").rows() == [
        (None, "file rejected: unexpected column(s) extra")]
    assert result.rows_read == 0
