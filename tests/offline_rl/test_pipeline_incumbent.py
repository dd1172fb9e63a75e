"""The incumbent is the policy in production: what exports/<domain>/latest names."""

from __future__ import annotations

import datetime as dt

import polars as pl

from offline_rl.data.warehouse import Warehouse
from offline_rl.pipeline import REGISTRY_TABLE, incumbent_record


def _decide(wh: Warehouse, day: dt.date, version: str | None, promoted: bool = True) -> None:
    row = pl.DataFrame([{
        "domain": "cart", "partition_date": day, "decided_at": dt.datetime.now(dt.UTC),
        "promoted": promoted, "candidate": "cql", "model_dir": f"/models/{day}",
        "export_version": version}], schema_overrides={"export_version": pl.String})
    wh.replace([(REGISTRY_TABLE, row, "registry/delete_decision", {"domain": "cart", "day": day})],
               label="test")


def test_rollback_changes_the_incumbent(paths):
    wh = Warehouse(paths.warehouse)
    d1, d2, d3 = dt.date(2026, 10, 1), dt.date(2026, 10, 2), dt.date(2026, 10, 3)
    assert incumbent_record(paths, "cart", d3) is None
    _decide(wh, d1, "v0001")
    _decide(wh, d2, "v0002")
    root = paths.exports / "cart"
    root.mkdir(parents=True)
    (root / "latest").write_text("v0002\n")
    assert incumbent_record(paths, "cart", d3)["export_version"] == "v0002"
    (root / "latest").write_text("v0001\n")  # offline-rl exports rollback
    assert incumbent_record(paths, "cart", d3)["export_version"] == "v0001"
    # a backfill of a day before the exported decision falls back to the last promotion
    assert incumbent_record(paths, "cart", d2)["export_version"] == "v0001"
    assert incumbent_record(paths, "cart", d1) is None
