"""A day with rejected files and quarantined rows says so where a person looks: the raw asset's
metadata lists them with their reasons, the ``no_rejected_files`` check fails as a WARN that
names the files, and the run logs a warning."""

from __future__ import annotations

import datetime as dt
import json
import logging

import dagster as dg
import pytest

from assets.ingestion import raw_asset
from offline_rl.data.schemas import PRICING_SALES
from orchestration.resources import DataHome

DAY = dt.date(2026, 10, 1)
ROW = {"sales_id": "s1", "sales_ts": "2026-10-01T23:00:00Z", "sku_id": "k", "item_id": 1,
       "market_id": 0, "category_id": 1, "episode_id": "e", "day_index": 0, "price": 2.0,
       "units_sold": 1, "revenue": 2.0, "margin": 1.0, "stock_end": 3, "sold_out": False}
ASSET = raw_asset(PRICING_SALES)


def _materialize(home, lines: list[dict], bad_files: dict[str, str]):
    folder = home / "landing" / PRICING_SALES.name / f"date={DAY}"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    for name, text in bad_files.items():
        (folder / name).write_text(text)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([ASSET], partition_key=str(DAY), instance=instance,
                            resources={"data_home": DataHome(home=str(home))})
    assert result.success  # rejects warn, they do not fail the run
    materialization = result.asset_materializations_for_node(PRICING_SALES.table)[0]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    warnings = [e.user_message for e in instance.all_logs(result.run_id)
                if e.level == logging.WARNING and PRICING_SALES.table in e.user_message]
    return materialization.metadata, checks, warnings


def test_rejects_and_quarantined_rows_are_listed_with_reasons(tmp_path):
    lines = [{**ROW, "sales_id": f"s{i}"} for i in range(1, 30)]
    for i in range(3, 28):  # 25 bad rows: more than the table lists
        lines[i] = {**lines[i], "price": -1.0 - i}
    metadata, checks, warnings = _materialize(tmp_path, lines, {
        "b.csv": "sales_id,nonsense\n1,2\n", "c.txt": "hello\n"})
    assert metadata["rows_quarantined"] == dg.MetadataValue.int(25)
    assert metadata["files_rejected"] == dg.MetadataValue.int(2)
    table = metadata["quarantine"].value
    assert table.splitlines()[0] == "| file | row | reason | record |"
    assert f"pricing_sales/date={DAY}/b.csv" in table and "missing column(s)" in table
    assert "unsupported file type" in table
    assert "price -4.0 is negative" in table
    body = [line for line in table.splitlines() if line.startswith("| pricing_sales/")]
    assert len(body) == 20  # capped
    assert body[0].split("|")[1].strip().endswith("b.csv")  # rejected files come first
    assert "7 more" in table and f"offline-rl quarantine --dataset pricing_sales --day {DAY}" \
        in table

    check = checks["no_rejected_files"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "2 landing file(s) rejected" in check.description
    assert "b.csv" in check.description and "c.txt" in check.description
    files = check.metadata["rejected"].value
    assert "b.csv" in files and "missing column(s) sales_ts" in files
    assert check.metadata["rejected_files"] == dg.MetadataValue.int(2)
    assert checks["reconciled"].passed and checks["keys_not_null"].passed

    assert len(warnings) == 1
    assert "2 file(s) rejected" in warnings[0] and "b.csv" in warnings[0]
    assert "25 row(s) quarantined" in warnings[0]


def test_a_clean_day_passes_and_says_nothing_was_quarantined(tmp_path):
    metadata, checks, warnings = _materialize(tmp_path, [ROW], {})
    assert metadata["rows_quarantined"] == dg.MetadataValue.int(0)
    assert metadata["files_rejected"] == dg.MetadataValue.int(0)
    assert metadata["quarantine"].value == "_(nothing quarantined)_"
    assert checks["no_rejected_files"].passed
    assert warnings == []


@pytest.mark.parametrize("spec_name", ["no_rejected_files"])
def test_the_check_spec_says_a_rejected_file_warns(spec_name):
    spec = next(s for s in ASSET.check_specs if s.name == spec_name)
    assert "WARN" in spec.description and "reason" in spec.description
