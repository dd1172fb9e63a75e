"""The generated landing-zone schema doc says what the reader does: its formats, optional
columns, value rules and which problems reject a file or only a row."""

import datetime as dt

import polars as pl
import pytest

from offline_rl.cli import main
from offline_rl.data.ingest import IngestConfig, read_partition
from offline_rl.data.readers import FORMATS
from offline_rl.data.rules import value_rules
from offline_rl.data.schemas import SOURCES


@pytest.fixture(scope="module")
def doc(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("doc") / "schemas.md"
    assert main(["schemas", "--output", str(out)]) == 0
    return out.read_text()


def test_every_readable_format_is_named_and_parquet_only_is_not_claimed(doc):
    for suffix in FORMATS:
        assert f"`*{suffix}`" in doc
    assert "*.parquet`; the folder" not in doc
    assert "match names and types exactly" not in doc
    assert "`.` or `_`" in doc  # skipped in-flight names


def test_optional_columns_are_marked_as_such(doc):
    for schema in SOURCES.values():
        start = doc.index(f"## `{schema.name}` → ")
        end = doc.find("\n## ", start + 1)
        section = doc[start:end if end > 0 else len(doc)]
        for column in schema.columns:
            row = next(line for line in section.splitlines()
                       if line.startswith(f"| `{column.name}` |"))
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert cells[2] == ("yes" if column.nullable else "no"), row
            assert cells[3] == ("yes" if column.optional else ""), row


def test_value_rules_and_probability_ranges_are_listed(doc):
    section = doc[doc.index("## `cart`"):doc.index("## `inventory_snapshots`")]
    assert "| `action` |" in section
    action = next(line for line in section.splitlines() if line.startswith("| `action` |"))
    assert "0, 1, 2, 3" in action
    prob = next(line for line in section.splitlines()
                if line.startswith("| `behavior_prob` |"))
    assert "(0, 1]" in prob
    for schema in SOURCES.values():
        assert set(value_rules(schema)) <= {c.name for c in schema.columns}


def test_what_the_doc_says_about_json_keys_is_what_the_reader_does(doc, tmp_path):
    assert "unexpected key" in doc and "only that line" in doc
    schema = SOURCES["pricing_sales"]
    day = dt.date(2026, 10, 1)
    folder = tmp_path / schema.name / f"date={day}"
    folder.mkdir(parents=True)
    row = {"sales_id": "s1", "sales_ts": "2026-10-01T23:00:00Z", "sku_id": "k", "item_id": 1,
           "market_id": 0, "category_id": 1, "episode_id": "e", "day_index": 0, "price": 2.0,
           "units_sold": 1, "revenue": 2.0, "margin": 1.0, "stock_end": 3, "sold_out": False}
    import json

    lines = [json.dumps(row), json.dumps({**row, "sales_id": "s2", "note": "x"})]
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    pl.DataFrame([{**row, "sales_ts": dt.datetime(2026, 10, 1, 22, tzinfo=dt.UTC),
                   "extra": 1}]).write_parquet(folder / "b.parquet")
    load = read_partition(tmp_path, schema, day,
                          IngestConfig(now=dt.datetime(2026, 10, 2, tzinfo=dt.UTC)))
    assert load.rows["sales_id"].to_list() == ["s1"]
    assert load.quarantine.select("row_number", "reason").rows() == [
        (2, "unexpected key(s) note"), (None, "file rejected: unexpected column(s) extra")]
