"""Landing formats and row rules: every bad input is quarantined with a reason, nothing is lost."""

import datetime as dt
import gzip
import json
import math
import re

import polars as pl
import pytest

from offline_rl.data.ingest import IngestConfig, read_partition
from offline_rl.data.schemas import CLICKSTREAM

DAY = dt.date(2026, 10, 1)
NOW = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "landing" / "clickstream" / f"date={DAY}"
    path.mkdir(parents=True)
    return path


def load(folder, **config):
    result = read_partition(folder.parents[1], CLICKSTREAM, DAY, IngestConfig(now=NOW, **config))
    assert result.reconciled, result.describe()
    return result


def rel(name: str) -> str:
    return f"clickstream/date={DAY}/{name}"


def write(frame: pl.DataFrame, path) -> None:
    name = path.name
    if name.endswith(".parquet"):
        frame.write_parquet(path)
        return
    text = frame.write_csv() if ".csv" in name else frame.write_ndjson()
    data = text.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)


@pytest.mark.parametrize("name", ["a.parquet", "a.csv", "a.csv.gz", "a.jsonl", "a.jsonl.gz"])
def test_every_format_loads_the_same_rows_exactly(folder, clean, name):
    write(clean, folder / name)
    result = load(folder)
    assert result.quarantine.is_empty() and result.rows_read == clean.height
    got = result.rows.sort("event_id").select(clean.columns)
    assert got.equals(clean.sort("event_id"))  # types and float values exact
    assert result.rows["_source_row"].min() == 1
    assert result.rows["_source_file"].unique().to_list() == [rel(name)]


@pytest.mark.parametrize("name", ["a.parquet", "a.csv.gz", "a.jsonl"])
def test_a_file_without_the_optional_policy_version_loads_with_nulls(folder, clean, name):
    assert CLICKSTREAM.optional == ["policy_version"]
    impressions = clean.filter(pl.col("event_type") == "impression")
    assert impressions["policy_version"].unique().to_list() == ["shop_rule"]
    write(clean.drop("policy_version"), folder / name)  # a shop that does not log it
    result = load(folder)
    assert result.quarantine.is_empty() and result.rows_read == clean.height
    assert result.rows["policy_version"].null_count() == clean.height
    got = result.rows.sort("event_id").select(clean.columns).drop("policy_version")
    assert got.equals(clean.sort("event_id").drop("policy_version"))


@pytest.mark.parametrize("name", ["a.csv", "a.jsonl"])
def test_a_string_in_a_numeric_column_quarantines_that_row_only(folder, clean, name):
    frame = clean.head(5).with_columns(pl.col(c).cast(pl.String) for c in ("page", "margin"))
    frame = frame.with_columns(page=pl.Series(["1", "two", "3", "4", "5"]),
                               margin=pl.Series([None, None, None, "lots", None]))
    write(frame, folder / name)
    result = load(folder)
    q = result.quarantine
    assert q["row_number"].to_list() == [2, 4]
    assert "column page: cannot read 'two' as Int32" in q["reason"][0]
    assert "column margin: cannot read 'lots' as Float64" in q["reason"][1]
    assert "two" in q["record"][0]  # the raw record as text
    assert result.rows.height == 3


def test_truncated_text_file_keeps_complete_records(folder, clean):
    text = clean.head(10).write_csv()
    cut = len(text) - 25  # inside the last record
    (folder / "a.csv").write_text(text[:cut])
    result = load(folder)
    assert result.rows.height == 9
    assert result.quarantine["row_number"].to_list() == [10]
    assert "truncated record" in result.quarantine["reason"][0]


@pytest.mark.parametrize("name,damage,reason", [
    ("a.parquet", lambda b: b[: len(b) // 2], "unreadable parquet"),
    ("a.parquet", lambda b: b[:100] + b"\x00" * 50 + b[150:], "unreadable parquet"),
    ("a.csv.gz", lambda b: b[: len(b) // 2], "corrupt or truncated gzip"),
    ("a.jsonl.gz", lambda b: b"not gzip at all", "corrupt or truncated gzip"),
    ("a.csv", lambda b: b"", "empty file"),
    ("a.parquet", lambda b: b"", "empty file"),
    ("a.jsonl", lambda b: b"\xff\xfe" + b, "not UTF-8"),
    ("a.csv", lambda b: b.split(b"\n")[0], "truncated header"),
])
def test_corrupt_files_are_rejected_whole_and_the_rest_loads(folder, clean, name, damage,
                                                             reason):
    write(clean, folder / name)
    (folder / name).write_bytes(damage((folder / name).read_bytes()))
    write(clean.head(7), folder / "good.parquet")
    result = load(folder)
    rejected = result.quarantine.filter(pl.col("row_number").is_null())
    assert rejected["file"].to_list() == [rel(name)]
    assert rejected["reason"][0].startswith("file rejected: ") and reason in rejected["reason"][0]
    assert "\n" not in rejected["reason"][0]
    assert result.rows.height == 7 and result.rows_read == 7


@pytest.mark.parametrize("name", ["a.csv", "a.parquet", "a.jsonl"])
def test_missing_or_extra_columns_reject_the_file(folder, clean, name):
    write(clean.drop("margin"), folder / name)
    if name.endswith(".jsonl"):  # no header: an extra key is a row problem (own test file)
        result = load(folder)
        assert result.quarantine["reason"].to_list() == ["file rejected: missing key(s) margin"]
        assert result.rows.is_empty() and result.rows_read == 0
        return
    write(clean.with_columns(extra=pl.lit(1)), folder / f"b{name[1:]}")
    result = load(folder)
    reasons = dict(zip(result.quarantine["file"], result.quarantine["reason"], strict=True))
    assert "missing column(s) margin" in reasons[rel(name)]
    assert "unexpected" in reasons[rel(f"b{name[1:]}")] and "extra" in reasons[rel(f"b{name[1:]}")]
    assert result.rows.is_empty() and result.rows_read == 0


def test_ragged_csv_lines_and_malformed_json_lines_are_row_level(folder, clean):
    lines = clean.head(4).write_csv().splitlines()
    lines[2] = lines[2] + ",surplus"
    lines[3] = lines[3].rsplit(",", 2)[0]
    lines.insert(4, "")
    (folder / "a.csv").write_text("\n".join(lines) + "\n")
    js = clean.slice(10, 3).write_ndjson().splitlines()
    js[1] = js[1][:-10]
    js.append("[1, 2]")
    js.append(re.sub(r',"margin":[^,}]*', "", js[0]))
    (folder / "b.jsonl").write_text("\n".join(js) + "\n")
    result = load(folder)
    q = {(f.rsplit("/", 1)[1], r): reason for f, r, reason in result.quarantine.select(
        "file", "row_number", "reason").iter_rows()}
    assert q[("a.csv", 2)] == "expected 16 fields, found 17"
    assert q[("a.csv", 3)] == "expected 16 fields, found 14"
    assert q[("a.csv", 4)] == "empty line"
    assert q[("b.jsonl", 2)] == "malformed JSON"
    assert q[("b.jsonl", 4)] == "not a JSON object"
    assert q[("b.jsonl", 5)] == "missing key(s) margin"
    assert result.rows.height == 2 + 2 and len(q) == 6


def test_row_rules_name_every_problem(folder, clean):
    base = clean.filter(pl.col("event_type") == "purchase").head(1)
    n = 11
    bad = pl.concat([base] * n).with_columns(
        event_id=pl.Series([f"bad{i}" if i != 0 else None for i in range(n)]),
        price=pl.Series([1.0, -2.0] + [1.0] * (n - 2)),
        behavior_prob=pl.Series([0.5, 0.5, 0.0, 1.5] + [0.5] * (n - 4)),
        category_id=pl.Series([1] * 4 + [17] + [1] * (n - 5), dtype=pl.Int32),
        event_type=pl.Series(["purchase"] * 5 + ["hover"] + ["purchase"] * (n - 6)),
        margin=pl.Series([1.0] * 6 + [math.nan, math.inf] + [1.0] * (n - 8)),
        event_ts=pl.Series([base["event_ts"][0]] * 8 + [
            dt.datetime(2026, 9, 30, 23, 59, tzinfo=dt.UTC),
            dt.datetime(2099, 1, 1, tzinfo=dt.UTC), base["event_ts"][0]]),
        user_id=pl.Series(["u1"] * (n - 1) + ["x" * 5000]),
    )
    write(pl.concat([clean, bad]), folder / "a.parquet")
    result = load(folder, max_string_length=1000, max_record_chars=2000)
    q = result.quarantine.sort("row_number")
    start = clean.height + 1
    assert q["row_number"].to_list() == list(range(start, start + n))
    reasons = q["reason"].to_list()
    assert "null event_id" in reasons[0]
    assert "price -2.0 is negative" in reasons[1]
    assert "behavior_prob 0.0 outside (0, 1]" in reasons[2]
    assert "behavior_prob 1.5 outside (0, 1]" in reasons[3]
    assert "category_id 17 is not one of 0, 1, 2, 3, 4, 5" in reasons[4]
    assert "event_type hover is not one of" in reasons[5]
    assert "non-finite margin NaN" in reasons[6] and "non-finite margin inf" in reasons[7]
    assert "outside partition 2026-10-01" in reasons[8]
    assert "is in the future" in reasons[9] and "outside partition" not in reasons[9]
    assert "user_id longer than 1000 bytes (5000)" in reasons[10]
    kept, marker = q["record"][10].split("...[record cut: ")
    assert kept.startswith('{"event_id":"bad10",') and len(kept) == 2000
    assert marker.endswith(" characters]") and int(marker.split()[0]) > 5000
    assert all(r.startswith("{") for r in q["record"])
    assert result.rows.height == clean.height


def test_csv_offsets_space_separator_and_infinity(folder, clean):
    # margin is the last column when the optional policy_version is left out
    purchases = clean.filter(pl.col("event_type") == "purchase").head(3).drop("policy_version")
    frame = purchases.with_columns(  # the same instants written with a +02:00 offset
        pl.col("event_ts").dt.convert_time_zone("Etc/GMT-2")
        .dt.to_string("%Y-%m-%d %H:%M:%S%.6f%:z"))
    write(frame, folder / "a.csv")
    text = (folder / "a.csv").read_text().splitlines()
    assert "+02:00" in text[1]
    text[3] = text[3].rsplit(",", 1)[0] + ",-inf"
    (folder / "a.csv").write_text("\n".join(text) + "\n")
    result = load(folder)
    assert result.quarantine["reason"].to_list() == ["non-finite margin -inf"]
    assert result.rows.sort("_source_row").select(purchases.columns).equals(purchases.head(2))


def test_naive_timestamps_are_refused(folder, clean):
    write(clean.head(3).with_columns(pl.col("event_ts").dt.replace_time_zone(None)),
          folder / "a.parquet")
    write(clean.head(3).with_columns(pl.col("event_ts").dt.to_string("%Y-%m-%dT%H:%M:%S")),
          folder / "b.csv")
    result = load(folder)
    q = result.quarantine
    assert q.filter(pl.col("row_number").is_null())["reason"].to_list() == [
        "file rejected: column event_ts has type Datetime(time_unit='us', time_zone=None), "
        "expected Datetime(time_unit='us', time_zone='UTC')"]
    assert q.filter(pl.col("row_number").is_not_null()).height == 3
    assert "cannot read" in q["reason"][1] and "as Datetime" in q["reason"][1]


def test_parquet_integer_overflow_and_widening(folder, clean):
    frame = clean.head(3).with_columns(page=pl.Series([1, 2**40, 3], dtype=pl.Int64),
                                       behavior_prob=pl.col("behavior_prob").cast(pl.Float32))
    write(frame, folder / "a.parquet")
    write(clean.head(2).with_columns(page=pl.col("page").cast(pl.Float64)), folder / "b.parquet")
    result = load(folder)
    q = result.quarantine
    assert q.filter(pl.col("row_number") == 2)["reason"][0].startswith(
        "column page: cannot read '1099511627776' as Int32")
    assert "file rejected: column page has type Float64" in \
        q.filter(pl.col("file") == rel("b.parquet"))["reason"][0]
    assert result.rows.height == 2 and result.rows["behavior_prob"].dtype == pl.Float64


def test_crlf_line_ends_and_a_byte_order_mark_are_accepted(folder, clean):
    text = "\ufeff" + clean.head(4).write_csv().replace("\n", "\r\n")
    (folder / "a.csv").write_bytes(text.encode())
    result = load(folder)
    assert result.quarantine.is_empty()
    assert result.rows.sort("_source_row").select(clean.columns).equals(clean.head(4))


def test_json_lines_with_spaces_and_a_missing_key_in_the_fast_path(folder, clean):
    rows = clean.head(3).with_columns(pl.col("event_ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"))
    lines = [json.dumps(r) for r in rows.to_dicts()]  # "key": value with spaces
    lines[1] = json.dumps({k: v for k, v in rows.to_dicts()[1].items() if k != "slot"})
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    result = load(folder)
    assert result.quarantine.select("row_number", "reason").rows() == [
        (2, "missing key(s) slot")]
    assert result.rows.sort("_source_row").select(clean.columns).equals(
        clean.head(3).filter(pl.int_range(pl.len()) != 1))
