"""The row rules of the landing contract: ``IngestConfig`` (its limits), the value domains
of the columns (``SourceSchema.rules``) and the polars expressions that name each broken rule of a
row (``offline_rl.data.ingest`` lists them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from offline_rl.data.readers import join_reasons
from offline_rl.data.schemas import SourceSchema, ValueRule


@dataclass(frozen=True)
class IngestConfig:
    """Limits of the landing contract.

    Attributes:
        max_string_length: Longest accepted string value, in UTF-8 bytes; a row with a longer
            value is quarantined.
        max_record_chars: Characters of the raw record kept in the quarantine table (longer
            records are cut and marked with their full length).
        future_tolerance: A row whose time is later than the load time plus this is
            quarantined as being in the future (clock skew of producers stays within it).
        now: Load time used for the future check; None means the current UTC time.
    """

    max_string_length: int = 10_000
    max_record_chars: int = 20_000
    future_tolerance: dt.timedelta = dt.timedelta(days=1)
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.max_string_length < 1 or self.max_record_chars < 64:
            raise ValueError("max_string_length must be >= 1 and max_record_chars >= 64")
        if self.future_tolerance < dt.timedelta(0):
            raise ValueError("future_tolerance must not be negative")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("IngestConfig.now must be timezone-aware")


def value_rules(schema: SourceSchema) -> dict[str, ValueRule]:
    """The value rules of a dataset (``SourceSchema.rules``)."""
    return dict(schema.rules)




def duration_text(delta: dt.timedelta) -> str:
    """``delta`` in words, e.g. ``1 day`` (row reasons and the schema doc)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{delta.total_seconds():g} seconds"



# ---------------------------------------------------------------- row rules

def row_rules(schema: SourceSchema, day: dt.date, config: IngestConfig
           ) -> list[tuple[pl.Expr, pl.Expr]]:
    """(broken, reason) expression pairs of every row rule."""
    rules: list[tuple[pl.Expr, pl.Expr]] = []
    for c in schema.required:
        rules.append((pl.col(c).is_null(), pl.lit(f"null {c}")))
    ts = pl.col(schema.time_column)
    now = config.now or dt.datetime.now(dt.UTC)
    horizon = now + config.future_tolerance
    shown_ts = ts.dt.to_string("%Y-%m-%dT%H:%M:%S")
    rules.append((ts > horizon, pl.format(
        # no load time in the text: reloading the same files must give the same rows
        f"{schema.time_column} {{}} is in the future (beyond the load time plus "
        f"{duration_text(config.future_tolerance)})",
        shown_ts)))
    rules.append(((ts <= horizon) & (ts.dt.date() != day), pl.format(
        f"{schema.time_column} {{}} outside partition {day:%Y-%m-%d}", shown_ts)))
    if schema.probability_column:
        p = pl.col(schema.probability_column)
        rules.append((~((p > 0) & (p <= 1)) & ~p.is_nan(), pl.format(
            f"{schema.probability_column} {{}} outside (0, 1]", p)))
    for name, dtype in schema.polars_schema.items():
        col = pl.col(name)
        if dtype.is_float():
            rules.append((~col.is_finite(), pl.format(f"non-finite {name} {{}}", col)))
        elif dtype == pl.String():
            rules.append((col.str.len_bytes() > config.max_string_length, pl.format(
                f"{name} longer than {config.max_string_length} bytes ({{}})",
                col.str.len_bytes())))
    for name, rule in value_rules(schema).items():
        rules.append((rule.violated(name),
                      pl.format(f"{name} {{}} {rule.describe()}", pl.col(name))))
    return [(broken.fill_null(False), reason) for broken, reason in rules]


def row_problems(schema: SourceSchema, day: dt.date, config: IngestConfig | None = None
                 ) -> pl.Expr:
    """A string expression naming every rule a row breaks ("; "-joined), null if none."""
    rules = row_rules(schema, day, config or IngestConfig())
    return join_reasons([pl.when(b).then(r) for b, r in rules])
