"""The incumbent is the policy in production: what exports/<domain>/latest names."""

from __future__ import annotations

import datetime as dt
import json

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


def test_warm_start_needs_the_incumbent_on_the_current_feature_schema(paths, tmp_path):
    from offline_rl.domains import get_domain
    from offline_rl.pipeline import warm_start_model

    cart = get_domain("cart")
    wh = Warehouse(paths.warehouse)
    d1, d2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
    _decide(wh, d1, "v0001")
    model_dir = tmp_path / "models" / str(d1)  # the row's model_dir is /models/<day>
    row = pl.DataFrame([{"domain": "cart", "partition_date": d1,
                         "decided_at": dt.datetime.now(dt.UTC), "promoted": True,
                         "candidate": "cql", "model_dir": str(model_dir),
                         "export_version": "v0001"}])
    wh.replace([(REGISTRY_TABLE, row, "registry/delete_decision", {"domain": "cart", "day": d1})],
               label="test")
    assert warm_start_model(paths, cart, d2) is None  # no training.json
    model_dir.mkdir(parents=True)
    record = {"name": "cql", "feature_schema": {"names": list(cart.feature_names)}}
    (model_dir / "training.json").write_text(json.dumps(record))
    assert warm_start_model(paths, cart, d2) == (model_dir, record)
    record["feature_schema"]["names"] = ["something", "else"]
    (model_dir / "training.json").write_text(json.dumps(record))
    assert warm_start_model(paths, cart, d2) is None
