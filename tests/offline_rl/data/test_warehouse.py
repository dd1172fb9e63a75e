import datetime as dt

import polars as pl
import pytest

from offline_rl.data.warehouse import Warehouse, WarehouseError, sql_text

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


def test_missing_table_reads_empty(tmp_path):
    assert Warehouse(tmp_path / "w.duckdb").read_partitions("nothing", DAY, DAY).is_empty()
