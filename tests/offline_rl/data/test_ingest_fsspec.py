"""A landing zone on object storage (an fsspec ``memory://`` filesystem) loads exactly what the
same files load from the local folder."""

import datetime as dt
import gzip
from pathlib import Path

import polars as pl
import pytest

from offline_rl.data.ingest import read_partition
from offline_rl.data.schemas import CART, CLICKSTREAM
from offline_rl.data.warehouse import Warehouse
from offline_rl.paths import LANDING_ENV, DataPaths, RemotePath, as_location
from offline_rl.pipeline import ingest_partition

DAY = dt.date(2026, 10, 2)
URI = "memory://shop-bucket/landing"


def _upload(local: Path, fs, root: str) -> int:
    """Copies every file under ``local`` (hidden ones too) to ``root`` on ``fs``."""
    files = [p for p in local.rglob("*") if p.is_file()]
    for path in files:
        fs.pipe_file(f"{root}/{path.relative_to(local).as_posix()}", path.read_bytes())
    return len(files)


@pytest.fixture
def awkward_landing(landing_paths):
    """The simulated landing zone plus a bad row, a gzipped CSV, a corrupt Parquet file, an
    unsupported file, a temporary file and an exact re-delivery, in the clickstream of DAY."""
    folder = landing_paths.landing / CLICKSTREAM.name / f"date={DAY}"
    original = pl.read_parquet(next(folder.glob("part-*.parquet")))
    original.head(3).with_columns(price=pl.Series([1.0, -1.0, 2.0]),
                                  event_id="new-" + pl.col("event_id")).write_csv(
        folder / "neg.csv")
    (folder / "more.csv.gz").write_bytes(gzip.compress(original.slice(20, 5).write_csv(
        ).encode()))
    (folder / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    (folder / "notes.txt").write_text("hello")
    (folder / ".part-x.parquet.tmp").write_bytes(b"half written")
    original.head(4).write_parquet(folder / "zz-dup.parquet")
    return landing_paths


def test_memory_landing_loads_the_same_warehouse_content_as_the_local_folder(
        awkward_landing, memory_fs, tmp_path):
    local = awkward_landing
    assert _upload(local.landing, memory_fs, "shop-bucket/landing") > 10
    remote = DataPaths(tmp_path / "remote-home", landing_uri=URI)
    assert isinstance(remote.landing, RemotePath)
    for schema in (CLICKSTREAM, CART):
        a = ingest_partition(local, schema, DAY)
        b = ingest_partition(remote, schema, DAY)
        assert b.summary() == a.summary() and b.skipped == a.skipped
        assert b.files == [f.replace(str(local.landing), URI) for f in a.files]
    a_wh, b_wh = Warehouse(local.warehouse), Warehouse(remote.warehouse)
    for table in ("raw_clickstream", "raw_cart", "quarantine"):
        assert b_wh.read_partitions(table, DAY, DAY).equals(a_wh.read_partitions(table, DAY, DAY))
        assert b_wh.digest(table, DAY) == a_wh.digest(table, DAY)
    q = b_wh.read_partitions("quarantine", DAY, DAY).filter(
        pl.col("source") == CLICKSTREAM.name).sort("file", "row_number")
    assert q.select("file", "row_number").rows() == [
        ("clickstream/date=2026-10-02/corrupt.parquet", None),
        ("clickstream/date=2026-10-02/neg.csv", 2),  # the bad row, by its relative name
        ("clickstream/date=2026-10-02/notes.txt", None),
    ]
    assert "price -1.0 is negative" in q["reason"][1]
    load = read_partition(URI, CLICKSTREAM, DAY)
    assert load.duplicates == 4 + 5  # zz-dup and more.csv.gz re-deliver rows of part-*
    assert load.skipped == [".part-x.parquet.tmp"]
    assert load.rows.filter(pl.col("_source_file").str.ends_with("more.csv.gz")).height == 5


def test_missing_remote_partition_loads_nothing(memory_fs):
    load = read_partition(URI, CLICKSTREAM, DAY)
    assert load.empty and load.rows.height == 0 and load.quarantine.is_empty()


def test_store_errors_fail_the_load_instead_of_quarantining(awkward_landing, memory_fs,
                                                            monkeypatch):
    _upload(awkward_landing.landing, memory_fs, "shop-bucket/landing")

    def refused(self):
        raise PermissionError("403 Forbidden")

    monkeypatch.setattr(RemotePath, "read_bytes", refused)
    with pytest.raises(PermissionError, match="403"):
        read_partition(URI, CLICKSTREAM, DAY)


def test_locations_from_uris_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(LANDING_ENV, raising=False)
    home = DataPaths(tmp_path)
    assert home.landing == tmp_path / "landing" and home.exports == tmp_path / "exports"
    # a plain path and a file:// URI stay local folders
    assert DataPaths(tmp_path, landing_uri=f"file://{tmp_path}/in").landing == tmp_path / "in"
    assert DataPaths(tmp_path, landing_uri=str(tmp_path / "in")).landing == tmp_path / "in"
    assert as_location("relative/dir") == Path("relative/dir")
    remote = as_location("memory://b/landing/")
    assert isinstance(remote, RemotePath) and str(remote / "x") == "memory://b/landing/x"
    # read when the paths are resolved, not at import
    monkeypatch.setenv(LANDING_ENV, URI)
    resolved = DataPaths.resolve(tmp_path)
    assert resolved.landing_uri == URI and str(resolved.landing) == URI
    assert DataPaths.resolve(tmp_path, landing=str(tmp_path / "x")).landing == tmp_path / "x"



def test_simulate_copies_its_files_to_the_configured_landing_zone(memory_fs, tmp_path, capsys):
    from offline_rl.cli import main

    code = main(["--home", str(tmp_path), "--landing", URI, "simulate", "--days", "1",
                 "--start", "2026-10-01", "--events-per-day", "300"])
    assert code == 0 and URI in capsys.readouterr().out
    local = read_partition(tmp_path / "landing", CART, dt.date(2026, 10, 1))
    remote = read_partition(URI, CART, dt.date(2026, 10, 1))
    assert remote.rows.height == local.rows.height > 0
    assert remote.rows.equals(local.rows)
