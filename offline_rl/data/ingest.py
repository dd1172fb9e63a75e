"""Reading one day of a landing dataset: formats, schema check, row rules, quarantine.

A partition folder ``landing/<dataset>/date=YYYY-MM-DD/`` holds files in any of these formats:
``*.parquet``, ``*.csv``, ``*.jsonl``, ``*.csv.gz`` and ``*.jsonl.gz``. Names starting with
``.`` or ``_`` are in-flight temporaries or markers of the producer and are skipped (and listed
in ``PartitionLoad.skipped``).

Nothing is dropped silently. Every row read ends up in exactly one of three places: loaded,
quarantined (with file, 1-based data row number, reason and the raw record as text), or
counted as an exact duplicate of an id already loaded. A file that cannot be taken as a whole
is quarantined whole (one quarantine row with ``row_number`` null and the reason) and the rest
of the partition still loads:

* unreadable, truncated or corrupt Parquet, a gzip stream that ends early, text that is not
  UTF-8, an empty file (0 bytes, or no header line);
* columns that do not match the schema: a missing or unexpected column in a CSV header or a
  Parquet schema, a column whose key no line of a JSON-lines file has, a Parquet column whose
  type cannot be converted (e.g. a naive timestamp, a float where an integer is expected);
* an unsupported file type, something that is not a regular file, or a symbolic link leading
  out of the landing zone.

The landing zone may also be a folder on object storage (any fsspec URI, see
``offline_rl.paths``): the partition is listed through the filesystem and each file's bytes are
read whole, one file at a time, then checked exactly as a local file (symbolic links exist only
locally). Errors of the store itself (a timeout, a denied request) fail the load, so the step
is retried, instead of quarantining the file.

Text files hold one record per line (UTF-8, ``\n`` or ``\r\n``); CSV has a header line,
comma separators, ``"`` quoting and empty fields for nulls; JSON lines hold one object per line
with every column as a key (null as ``null``). Row numbers count data records from 1 (the CSV
header is not a row).

Row rules (each broken rule is named in the reason, ``"; "``-joined):

* text records: blank line, malformed quoting, wrong number of fields (CSV); malformed JSON or
  not an object, missing keys (of non-optional columns) or unexpected keys, each named (JSON
  lines: a line has no header to reject, so an extra key quarantines only its line); a last
  record without a line break (the file was cut off);
* a value that does not parse as the column's type (``"abc"`` in a numeric column); text
  timestamps must be ISO 8601 with an offset (``Z``, ``+00:00`` or ``+0000``);
* null in a non-nullable column (the key included);
* the time column outside the partition's UTC day, or later than the load time plus
  ``IngestConfig.future_tolerance``;
* the behaviour probability outside (0, 1];
* NaN or infinity in a float column;
* a value outside the column's domain (``SourceSchema.rules``: known categories and action ids,
  non-negative prices and quantities);
* a string longer than ``IngestConfig.max_string_length`` (UTF-8 bytes);
* an id seen earlier in the partition with different content (the first is kept).

Identical re-deliveries of an id (within a file, across files, in a later delivery) are kept
once and counted in ``duplicates``. The loaded rows are sorted by (time, key), so reading the
same files again gives the same rows in the same order.

The file formats are read in ``offline_rl.data.readers``, the row rules and their limits are
``offline_rl.data.rules``; this module lists a partition, runs both, deduplicates and loads.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import polars as pl

from offline_rl.data.readers import (
    FORMATS,
    FileRejected,
    join_reasons,
    landing_format,
    one_line,
    read_file,
)
from offline_rl.data.rules import IngestConfig, row_rules
from offline_rl.data.schemas import SourceSchema
from offline_rl.data.warehouse import Warehouse
from offline_rl.paths import Location, RemotePath, as_location

QUARANTINE_TABLE = "quarantine"
QUARANTINE_SCHEMA = pl.Schema(
    {
        "source": pl.String(),
        "partition_date": pl.Date(),
        "file": pl.String(),
        "row_number": pl.Int64(),
        "reason": pl.String(),
        "record": pl.String(),
    }
)



_PARTITION_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ENGINE: Final = "in-memory"
"""Engine of the partition queries: a day fits in memory, and on a 1M-event day the
in-memory engine sorts several times faster than the streaming one."""



@dataclass(frozen=True)
class PartitionLoad:
    """What reading one landing partition produced.

    Attributes:
        rows: Valid rows with lineage columns ``_source_file`` and ``_source_row`` (1-based
            data row of the file), sorted by (time, key), ready to load.
        quarantine: Rejected rows and files, in the ``quarantine`` table's schema.
        files: Landing files of the partition (rejected ones included).
        rows_read: Data rows read from files that were not rejected whole.
        duplicates: Rows dropped as exact copies of a row already kept in this partition.
        skipped: Names skipped as temporaries or markers (starting with ``.`` or ``_``).
    """

    rows: pl.DataFrame
    quarantine: pl.DataFrame
    files: list[str]
    rows_read: int
    duplicates: int
    skipped: list[str] = field(default_factory=list)

    @property
    def rejected_files(self) -> int:
        """Files quarantined whole (their quarantine row has no row number)."""
        return self.quarantine.filter(pl.col("row_number").is_null()).height

    @property
    def quarantined_rows(self) -> int:
        return self.quarantine.height - self.rejected_files

    @property
    def reconciled(self) -> bool:
        """read = loaded + quarantined rows + duplicates dropped."""
        return self.rows_read == self.rows.height + self.quarantined_rows + self.duplicates

    @property
    def empty(self) -> bool:
        """No landing file at all (an empty partition loads nothing; it is not an error)."""
        return not self.files

    def summary(self) -> dict[str, int]:
        return {"files": len(self.files), "rows_read": self.rows_read,
                "rows_loaded": self.rows.height, "rows_quarantined": self.quarantined_rows,
                "duplicates_dropped": self.duplicates, "files_rejected": self.rejected_files}

    def describe(self) -> str:
        """One line for logs and reports."""
        if self.empty:
            return "no landing files: nothing loaded"
        s = self.summary()
        text = (f"{s['files']} file(s), {s['rows_read']} rows read: {s['rows_loaded']} loaded, "
                f"{s['rows_quarantined']} quarantined, {s['duplicates_dropped']} duplicates "
                f"dropped, {s['files_rejected']} file(s) rejected")
        return text if self.reconciled else text + " (NOT RECONCILED)"




def parse_partition_key(key: str) -> dt.date:
    """The date of a partition key ``YYYY-MM-DD`` (``ValueError`` naming the key otherwise)."""
    if not isinstance(key, str) or not _PARTITION_KEY.match(key):
        raise ValueError(f"invalid partition key {key!r}: expected YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(key)
    except ValueError:
        raise ValueError(f"invalid partition key {key!r}: not a calendar date") from None


def partition_folder(landing: Location | str, schema: SourceSchema, day: dt.date) -> Location:
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise ValueError(f"partition day must be a date, got {day!r}")
    return as_location(landing) / schema.name / f"date={day:%Y-%m-%d}"





def _cut_record(expr: pl.Expr, limit: int) -> pl.Expr:
    n = expr.str.len_chars()
    return pl.when(n > limit).then(pl.format(
        "{}...[record cut: {} characters]", expr.str.head(limit), n)).otherwise(expr)




# ---------------------------------------------------------------- the partition

def _relative(path: Location, landing: Location) -> str:
    """``path``'s name inside the landing zone ``landing`` (both local or both remote)."""
    if isinstance(path, Path) and isinstance(landing, Path):
        return path.relative_to(landing).as_posix()
    if isinstance(path, RemotePath) and isinstance(landing, RemotePath):
        return path.relative_to(landing).as_posix()
    raise TypeError(f"{path} and the landing zone {landing} are not on one filesystem")


def _landing_entries(folder: Location, root: Path | None
                     ) -> tuple[list[Location], list[str]]:
    """Files of the folder (sorted by name) and the names skipped as temporaries/markers;
    ``root`` is the resolved local landing zone (None on object storage)."""
    if root is not None and isinstance(folder, Path) \
            and not folder.resolve().is_relative_to(root):
        raise ValueError(f"partition folder {folder} leads outside the landing zone {root}")
    if not folder.is_dir():
        return [], []
    entries: list[Location] = sorted(folder.iterdir(), key=lambda p: p.name)
    files = [p for p in entries if not p.name.startswith((".", "_"))]
    skipped = [p.name for p in entries if p.name.startswith((".", "_"))]
    return files, skipped


def _file_rejection(path: Location, root: Path | None) -> str | None:
    """Why a listed entry cannot be a landing file (None if it can); ``root`` is the resolved
    local landing zone (None on object storage, which has no symbolic links)."""
    if root is not None and isinstance(path, Path) and path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            return "symbolic link to a location outside the landing zone"
    if not path.is_file():
        return "not a regular file"
    if landing_format(path.name) is None:
        return ("unsupported file type (expected " + ", ".join(f"*{s}" for s in FORMATS)
                + ")")
    return None


def _rejected_row(schema: SourceSchema, day: dt.date, rel: str, reason: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"source": [schema.name], "partition_date": [day], "file": [rel], "row_number": [None],
         "reason": [f"file rejected: {reason}"], "record": [None]},
        schema=QUARANTINE_SCHEMA,
    )


def _quarantine_rows(frame: pl.DataFrame, schema: SourceSchema, day: dt.date, reason: pl.Expr,
                     config: IngestConfig) -> pl.DataFrame:
    """Rows of ``frame`` as quarantine rows; the record is the raw text record, or the row as
    JSON for Parquet."""
    as_json = pl.struct(schema.polars_schema.names()).struct.json_encode()
    return frame.select(
        source=pl.lit(schema.name), partition_date=pl.lit(day, dtype=pl.Date),
        file="_source_file", row_number="_source_row", reason=reason,
        record=_cut_record(pl.coalesce("_record", as_json), config.max_record_chars),
    )


def read_partition(
    landing: Location | str, schema: SourceSchema, day: dt.date,
    config: IngestConfig | None = None,
) -> PartitionLoad:
    """Reads ``landing/<dataset>/date=<day>/`` and splits good rows from bad (see the module
    docstring for every rule). ``landing`` is a local folder or a ``RemotePath`` / fsspec URI."""
    config = config or IngestConfig()
    landing = as_location(landing)
    root = landing.resolve() if isinstance(landing, Path) else None  # None: object storage
    folder = partition_folder(landing, schema, day)
    files, skipped = _landing_entries(folder, root)
    frames: list[pl.DataFrame] = []
    quarantined: list[pl.DataFrame] = []
    for path in files:
        # the file's name inside the landing zone, the same wherever the zone lives
        rel = _relative(path, landing)
        try:
            reason = _file_rejection(path, root)
            if reason is not None:
                raise FileRejected(reason)
            frame = read_file(path, landing_format(path.name) or "", schema)
        except FileRejected as exc:
            quarantined.append(_rejected_row(schema, day, rel, str(exc)))
            continue
        except OSError as exc:
            if root is None:  # the store failed, not the file: fail the load (step retries)
                raise
            quarantined.append(_rejected_row(schema, day, rel,
                                             f"unreadable: {one_line(exc)}"))
            continue
        # the name as a column of its own, not a broadcast literal: the files' frames are
        # concatenated without copying, and some string kernels mishandle chunked literals
        frames.append(frame.with_columns(pl.repeat(rel, frame.height, dtype=pl.String,
                                                   eager=True).alias("_source_file")))

    columns = [*schema.polars_schema.names(), "_source_file", "_source_row"]
    if frames:
        everything = pl.concat(frames, rechunk=False)  # the files' rows, not copied
    else:
        everything = pl.DataFrame(schema={**schema.polars_schema, "_source_row": pl.Int64(),
                                          "_record": pl.String(), "_parse": pl.String(),
                                          "_unparsed": pl.Boolean(),
                                          "_source_file": pl.String()})
    del frames  # from here on the rows are held by ``everything`` alone
    rows_read = everything.height
    rules = row_rules(schema, day, config)
    broken = pl.any_horizontal(pl.col("_parse").is_not_null(), *[b for b, _ in rules])
    row_reason = pl.when(pl.col("_unparsed")).then(pl.col("_parse")).otherwise(
        join_reasons([pl.col("_parse"), *[pl.when(b).then(r) for b, r in rules]]))
    flags = everything.lazy().select(broken.alias("_broken")).collect(engine=_ENGINE)["_broken"]
    if flags.any() or flags.null_count():
        lazy = everything.lazy().with_columns(_broken=flags)
        bad, good = pl.collect_all([
            lazy.filter(pl.col("_broken")),
            lazy.filter(~pl.col("_broken")).select(*columns, "_record"),
        ], engine=_ENGINE)
        del lazy
        quarantined.append(_quarantine_rows(bad, schema, day, row_reason, config))
        del bad
    else:  # the usual case, every row good: selecting columns copies nothing
        good = everything.select(*columns, "_record")
    del everything, flags

    good, conflicting, duplicates = _drop_duplicates(good, schema)
    if conflicting.height:
        first = pl.format("duplicate {} {} with different content (kept {} row {})",
                          pl.lit(schema.key), pl.col(schema.key), pl.col("_kept_file"),
                          pl.col("_kept_row"))
        quarantined.append(_quarantine_rows(conflicting, schema, day, first, config))
    del conflicting
    good = good.select(columns)
    order = good.select(pl.arg_sort_by(schema.time_column, schema.key)).to_series()
    if not order.is_sorted():  # a permutation in ascending order is the identity: in order
        # out of order (several files): sorted a column at a time, each source column let go
        # once copied, so the rows are held about once, not twice, while they are sorted
        ordered: list[pl.Series] = []
        for name in columns:
            ordered.append(good.get_column(name).gather(order))
            good = good.drop(name)
        good = pl.DataFrame(ordered)
        del ordered
    rows = good.with_columns(partition_date=pl.lit(day, dtype=pl.Date))
    del good, order
    quarantine = (pl.concat(quarantined).sort("file", "row_number", nulls_last=False)
                  if quarantined else pl.DataFrame(schema=QUARANTINE_SCHEMA))
    return PartitionLoad(rows=rows, quarantine=quarantine, files=[str(f) for f in files],
                         rows_read=rows_read, duplicates=duplicates, skipped=skipped)


def _drop_duplicates(good: pl.DataFrame, schema: SourceSchema
                     ) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(kept rows, rows whose id was seen before with different content, exact copies dropped).

    ``good`` is in (file, row) order, so the first delivery of an id is the one kept.
    """
    key = schema.key
    if good[key].n_unique() == good.height:  # the usual case, and cheaper to establish
        return good, good.clear().with_columns(_kept_file=pl.lit(None, pl.String),
                                               _kept_row=pl.lit(None, pl.Int64)), 0
    first = good[key].is_first_distinct()
    content = pl.struct(schema.polars_schema.names()).hash(seed=0)
    marked = good.with_columns(_first=first, _hash=content).with_columns(
        _kept_hash=pl.col("_hash").first().over(key),
        _kept_file=pl.col("_source_file").first().over(key),
        _kept_row=pl.col("_source_row").first().over(key),
    )
    later = marked.filter(~pl.col("_first"))
    conflicting = later.filter(pl.col("_hash") != pl.col("_kept_hash"))
    kept = marked.filter(pl.col("_first")).drop("_first", "_hash", "_kept_hash", "_kept_file",
                                                 "_kept_row")
    return kept, conflicting, later.height - conflicting.height


def load_partition(
    landing: Location | str, warehouse: Path, schema: SourceSchema, day: dt.date,
    config: IngestConfig | None = None,
) -> PartitionLoad:
    """Reads a landing partition and replaces ``raw_<dataset>``'s partition and the dataset's
    quarantine rows of the day in one transaction (a crash leaves the previous content).

    Loading the same files again gives the same table content, byte for byte.
    """
    load = read_partition(landing, schema, day, config)
    if not load.reconciled:  # a bug, never bad input: refuse to write
        raise RuntimeError(f"{schema.name} {day}: {load.describe()}")
    Warehouse(warehouse).replace_partition(
        schema.table, load.rows, day=day,
        extra={QUARANTINE_TABLE: (load.quarantine, {"source": schema.name, "day": day})},
    )
    return load
