"""Reading one day of a landing dataset: schema check at the read, row rules, quarantine.

Nothing is dropped silently. Every row read ends up in exactly one of three places:
loaded, quarantined (with file, row number and reason), or counted as a duplicate of an
event id already loaded. A file that cannot be read, or whose columns do not match the
schema, is quarantined whole (one quarantine row with ``row_number`` null) and the rest of
the partition still loads.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from offline_rl.data.schemas import SourceSchema

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


@dataclass(frozen=True)
class PartitionLoad:
    """What reading one landing partition produced.

    Attributes:
        rows: Valid rows with lineage columns, ready to load.
        quarantine: Rejected rows and files, in the ``quarantine`` table's schema.
        files: Files found in the partition folder.
        rows_read: Rows read from readable files.
        duplicates: Rows dropped because their event id was already seen in this partition.
    """

    rows: pl.DataFrame
    quarantine: pl.DataFrame
    files: list[str]
    rows_read: int
    duplicates: int

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


def partition_folder(landing: Path, schema: SourceSchema, day: dt.date) -> Path:
    return Path(landing) / schema.name / f"date={day:%Y-%m-%d}"


def _file_problem(frame_schema: pl.Schema, schema: SourceSchema) -> str | None:
    expected = schema.polars_schema
    missing = [c for c in expected.names() if c not in frame_schema]
    if missing:
        return f"missing column(s) {', '.join(missing)}"
    extra = [c for c in frame_schema.names() if c not in expected]
    if extra:
        return f"unexpected column(s) {', '.join(extra)}"
    for name, dtype in expected.items():
        got = frame_schema[name]
        if got != dtype and not (dtype == pl.Datetime("us", "UTC") and isinstance(got, pl.Datetime)
                                 and got.time_zone == "UTC"):
            return f"column {name} has type {got}, expected {dtype}"
    return None


def row_problems(schema: SourceSchema, day: dt.date) -> pl.Expr:
    """A string expression naming every rule a row breaks ("; "-joined), null if none."""
    checks: list[pl.Expr] = [
        pl.when(pl.col(c).is_null()).then(pl.lit(f"null {c}")) for c in schema.required
    ]
    ts = pl.col(schema.time_column)
    checks.append(
        pl.when(ts.dt.date() != pl.lit(day)).then(
            pl.format(f"{schema.time_column} {{}} outside partition {day:%Y-%m-%d}",
                      ts.dt.to_string("%Y-%m-%dT%H:%M:%S"))
        )
    )
    if schema.probability_column:
        p = pl.col(schema.probability_column)
        checks.append(
            pl.when(p.is_not_null() & ~((p > 0) & (p <= 1))).then(
                pl.format(f"{schema.probability_column} {{}} outside (0, 1]", p)
            )
        )
    for col in schema.columns:
        if col.dtype.is_float():
            c = pl.col(col.name)
            checks.append(pl.when(c.is_nan() | c.is_infinite()).then(
                pl.lit(f"non-finite {col.name}")))
    return pl.concat_str(checks, separator="; ", ignore_nulls=True).replace("", None)


def read_partition(landing: Path, schema: SourceSchema, day: dt.date) -> PartitionLoad:
    """Reads ``landing/<dataset>/date=<day>/*.parquet`` and splits good rows from bad."""
    folder = partition_folder(landing, schema, day)
    files = sorted(p for p in folder.glob("*.parquet")) if folder.is_dir() else []
    good: list[pl.DataFrame] = []
    quarantined: list[pl.DataFrame] = []
    rows_read = 0
    for path in files:
        rel = str(path.relative_to(landing))
        try:
            frame = pl.read_parquet(path)
            problem = _file_problem(frame.schema, schema)
        except Exception as exc:  # unreadable file: quarantine whole, keep going
            frame, problem = None, f"unreadable parquet: {type(exc).__name__}: {exc}"[:500]
        if problem is not None or frame is None:
            quarantined.append(pl.DataFrame(
                {"source": [schema.name], "partition_date": [day], "file": [rel],
                 "row_number": [None], "reason": [f"file rejected: {problem}"], "record": [None]},
                schema=QUARANTINE_SCHEMA,
            ))
            continue
        rows_read += frame.height
        frame = frame.cast(dict(schema.polars_schema)).with_columns(
            _source_file=pl.lit(rel), _source_row=pl.int_range(pl.len(), dtype=pl.Int64),
            _problem=row_problems(schema, day),
        )
        bad = frame.filter(pl.col("_problem").is_not_null())
        if bad.height:
            quarantined.append(bad.select(
                source=pl.lit(schema.name), partition_date=pl.lit(day, dtype=pl.Date),
                file="_source_file", row_number="_source_row", reason="_problem",
                record=pl.struct(schema.polars_schema.names()).struct.json_encode(),
            ))
        good.append(frame.filter(pl.col("_problem").is_null()).drop("_problem"))
    rows = (
        pl.concat(good) if good
        else pl.DataFrame(schema=schema.polars_schema).with_columns(
            _source_file=pl.lit(None, pl.String), _source_row=pl.lit(None, pl.Int64))
    )
    before = rows.height
    # the same event delivered twice (within a file, across files or re-deliveries): keep the
    # first by (file, row), which is deterministic
    rows = rows.sort("_source_file", "_source_row").unique(schema.key, keep="first",
                                                             maintain_order=True)
    rows = rows.with_columns(partition_date=pl.lit(day, dtype=pl.Date)).sort(
        schema.time_column, schema.key)
    quarantine = (pl.concat(quarantined) if quarantined
                  else pl.DataFrame(schema=QUARANTINE_SCHEMA))
    return PartitionLoad(rows=rows, quarantine=quarantine, files=[str(f) for f in files],
                         rows_read=rows_read, duplicates=before - rows.height)
