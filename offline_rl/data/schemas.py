"""Schemas of the landing-zone datasets: the contract between log producers and the pipeline.

Each dataset lives under ``<data home>/landing/<name>/date=YYYY-MM-DD/*.parquet`` and is
loaded into the DuckDB table ``raw_<name>``. A file's columns must have exactly these names and
types (checked at the read); rows are then validated against the key, time and probability
rules. ``docs/schemas.md`` is generated from this module (``offline-rl schemas``).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Column:
    """One column of a landing dataset."""

    name: str
    dtype: pl.DataType
    doc: str
    nullable: bool = True


@dataclass(frozen=True)
class SourceSchema:
    """A landing dataset.

    Attributes:
        name: Folder under ``landing/`` and suffix of the raw table ``raw_<name>``.
        source: Which of the five log sources it belongs to.
        doc: One line on what a row is.
        columns: Columns in order.
        key: Column that identifies a row uniquely (an event id).
        time_column: Timestamp whose UTC date decides the partition.
        probability_column: Behaviour-policy probability of the logged decision, if the
            dataset logs decisions; must lie in (0, 1] where not null.
    """

    name: str
    source: str
    doc: str
    columns: tuple[Column, ...]
    key: str
    time_column: str
    probability_column: str | None = None

    @property
    def table(self) -> str:
        return f"raw_{self.name}"

    @property
    def polars_schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if not c.nullable]


TS = pl.Datetime("us", "UTC")

CLICKSTREAM = SourceSchema(
    name="clickstream",
    source="clickstream",
    doc="Storefront events: page views, recommendation impressions, clicks and purchases.",
    key="event_id",
    time_column="event_ts",
    probability_column="behavior_prob",
    columns=(
        Column("event_id", pl.String(), "Unique event id.", nullable=False),
        Column("event_ts", TS, "Event time (UTC).", nullable=False),
        Column("event_type", pl.String(), "page_view | impression | click | purchase.",
               nullable=False),
        Column("session_id", pl.String(), "Browsing session id.", nullable=False),
        Column("user_id", pl.String(), "User id.", nullable=False),
        Column("user_segment", pl.Int32(), "CRM segment of the user (0-based).", nullable=False),
        Column("device", pl.String(), "mobile | desktop.", nullable=False),
        Column("page", pl.Int32(), "Page index within the session (0-based).", nullable=False),
        Column("slot", pl.Int32(), "Recommendation slot (impressions, clicks, purchases)."),
        Column("item_id", pl.Int64(), "Item shown, clicked or bought."),
        Column("category_id", pl.Int32(), "Category of the item; the recommendation action."),
        Column("behavior_prob", pl.Float64(),
               "Impressions: probability the logging policy gave to the shown category."),
        Column("ref_event_id", pl.String(), "Clicks and purchases: the impression they follow."),
        Column("price", pl.Float64(), "Purchases: unit price paid."),
        Column("margin", pl.Float64(), "Purchases: price minus unit cost."),
    ),
)

SOURCES: dict[str, SourceSchema] = {s.name: s for s in (CLICKSTREAM,)}
"""Every landing dataset, by name."""

