"""``offline-rl quarantine``: the quarantined rows and rejected files of the warehouse, with
file, 1-based row number, reason and the raw record, and a summary per file and reason."""

import datetime as dt
import json

import polars as pl
import pytest

from offline_rl.cli import main
from offline_rl.data.ingest import IngestConfig, load_partition
from offline_rl.data.schemas import PRICING_SALES
from offline_rl.paths import DataPaths

DAY = dt.date(2026, 10, 1)
ROW = {"sales_id": "s1", "sales_ts": "2026-10-01T23:00:00Z", "sku_id": "k", "item_id": 1,
       "market_id": 0, "category_id": 1, "episode_id": "e", "day_index": 0, "price": 2.0,
       "units_sold": 1, "revenue": 2.0, "margin": 1.0, "stock_end": 3, "sold_out": False}


@pytest.fixture
def home(tmp_path):
    paths = DataPaths(tmp_path)
    folder = tmp_path / "landing" / PRICING_SALES.name / f"date={DAY}"
    folder.mkdir(parents=True)
    lines = [json.dumps({**ROW, "sales_id": f"s{i}"}) for i in range(1, 6)]
    lines[1] = json.dumps({**ROW, "sales_id": "s2", "price": -1.0, "blurb": "x" * 500})
    lines[3] = json.dumps({**ROW, "sales_id": "s4", "price": -3.0})
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "b.csv").write_text("sales_id,nonsense\n1,2\n")
    config = IngestConfig(now=dt.datetime(2026, 10, 2, tzinfo=dt.UTC))
    load = load_partition(paths.landing, paths.warehouse, PRICING_SALES, DAY, config)
    assert load.rows.height == 3 and load.quarantined_rows == 2 and load.rejected_files == 1
    return tmp_path


def test_lists_rows_and_files_with_reasons_and_a_summary(home, capsys):
    assert main(["--home", str(home), "quarantine"]) == 0
    out = capsys.readouterr().out
    assert "2 quarantined row(s), 1 rejected file(s)" in out
    lines = out.splitlines()
    a2 = next(line for line in lines if "a.jsonl" in line and "unexpected key(s) blurb" in line)
    assert " 2 " in a2 and a2.endswith("...") and "\"sales_id\": \"s2\"" in a2
    assert len(a2) < 300  # the record is cut in the listing
    a4 = next(line for line in lines if "a.jsonl" in line and "price -3.0 is negative" in line)
    assert " 4 " in a4
    b = next(line for line in lines if "b.csv" in line and "file rejected" in line)
    assert "file rejected: missing column(s) sales_ts" in b
    assert "by file and reason" in out


def test_filters_limit_and_json(home, capsys, tmp_path):
    out_file = tmp_path / "q.json"
    assert main(["--home", str(home), "quarantine", "--dataset", "pricing_sales", "--day",
                 str(DAY), "--limit", "1", "--json", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "showing 1 of 3" in out
    record = json.loads(out_file.read_text())
    assert record["rows_quarantined"] == 2 and record["files_rejected"] == 1
    assert record["total"] == 3 and len(record["rows"]) == 1
    first = record["rows"][0]
    assert first["file"] == f"pricing_sales/date={DAY}/a.jsonl" and first["row_number"] == 2
    assert first["dataset"] == "pricing_sales" and first["day"] == str(DAY)
    assert sorted((s["file"].rsplit("/", 1)[1], s["reason"].split(":")[0], s["rows"])
                  for s in record["summary"]) == [
        ("a.jsonl", "price -3.0 is negative", 1), ("a.jsonl", "unexpected key(s) blurb", 1),
        ("b.csv", "file rejected", 0)]
    assert main(["--home", str(home), "quarantine", "--dataset", "cart"]) == 0
    assert "nothing quarantined" in capsys.readouterr().out
    assert main(["--home", str(home), "quarantine", "--day", "2026-10-02"]) == 0
    assert "nothing quarantined" in capsys.readouterr().out


def test_rows_are_numbered_from_one_as_in_the_file(home, tmp_path):
    out_file = tmp_path / "q.json"
    assert main(["--home", str(home), "quarantine", "--json", str(out_file)]) == 0
    rows = json.loads(out_file.read_text())["rows"]
    numbered = {r["row_number"]: r["record"] for r in rows if r["row_number"] is not None}
    assert json.loads(numbered[2])["sales_id"] == "s2"
    assert json.loads(numbered[4])["sales_id"] == "s4"


def test_unknown_dataset_missing_warehouse_or_table_say_where_they_looked(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "quarantine"]) == 2
    err = capsys.readouterr().err
    assert "no warehouse" in err and str(tmp_path) in err and "hint:" in err
    assert not (tmp_path / "warehouse.duckdb").exists()  # looking creates nothing
    from offline_rl.data.warehouse import Warehouse

    Warehouse(tmp_path / "warehouse.duckdb").replace_partition(
        "raw_x", pl.DataFrame({"a": [1], "partition_date": [DAY]}), day=DAY)
    assert main(["--home", str(tmp_path), "quarantine"]) == 2
    err = capsys.readouterr().err
    assert "no quarantine table" in err and str(tmp_path) in err
    assert main(["--home", str(tmp_path), "quarantine", "--dataset", "nosuch"]) == 2
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err
