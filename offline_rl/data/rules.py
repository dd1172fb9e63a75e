"""The row rules of the landing contract: ``IngestConfig`` (its limits), the value domains
of the columns (``VALUE_RULES``) and the polars expressions that name each broken rule of a
row (``offline_rl.data.ingest`` lists them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from offline_rl.data.readers import join_reasons
from offline_rl.data.schemas import SourceSchema


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


@dataclass(frozen=True)
class ValueRule:
    """Allowed values of a landing column beyond its type (nulls are left to ``nullable``).

    Attributes:
        allowed: The value must be one of these (categories, action ids), or None.
        minimum: Inclusive lower bound, or None.
        maximum: Inclusive upper bound, or None.
    """

    allowed: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def violated(self, column: str) -> pl.Expr:
        """True where a non-null value breaks the rule."""
        c = pl.col(column)
        bad = pl.lit(False)
        if self.allowed is not None:
            bad = bad | ~c.is_in(list(self.allowed))
        if self.minimum is not None:
            bad = bad | (c < self.minimum)
        if self.maximum is not None:
            bad = bad | (c > self.maximum)
        return c.is_not_null() & bad

    def allowed_text(self) -> str:
        """The values the rule accepts, for the schema doc, e.g. ``one of a, b`` or ``>= 0``."""
        if self.allowed is not None:
            return "one of " + ", ".join(str(v) for v in self.allowed)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f">= {self.minimum:g}"
        return f"<= {self.maximum:g}"

    def describe(self) -> str:
        """What a violating value is, e.g. ``is negative`` or ``is not one of a, b``."""
        if self.allowed is not None:
            return "is not one of " + ", ".join(str(v) for v in self.allowed)
        if self.minimum is not None and self.maximum is not None:
            return f"is not in [{self.minimum:g}, {self.maximum:g}]"
        if self.minimum is not None:
            return "is negative" if self.minimum == 0 else f"is below {self.minimum:g}"
        return f"is above {self.maximum:g}"


def _non_negative(*columns: str) -> dict[str, ValueRule]:
    return {c: ValueRule(minimum=0) for c in columns}


def _ids(n: int) -> ValueRule:
    return ValueRule(allowed=tuple(range(n)))


_CATEGORY_NAMES = ("electronics", "home", "fashion", "beauty", "sports", "toys")
_DEVICES = ValueRule(allowed=("mobile", "desktop"))
_CATEGORY = _ids(len(_CATEGORY_NAMES))

VALUE_RULES: dict[str, dict[str, ValueRule]] = {
    "clickstream": {
        "event_type": ValueRule(allowed=("page_view", "impression", "click", "purchase")),
        "device": _DEVICES,
        "category_id": _CATEGORY,
        **_non_negative("user_segment", "page", "slot", "price"),
    },
    "cart": {
        "event_type": ValueRule(allowed=("visit", "offer", "checkout", "abandon")),
        "device": _DEVICES,
        "action": _ids(4),
        "offer": ValueRule(allowed=("none", "coupon_5", "coupon_15", "free_shipping")),
        **_non_negative("user_segment", "visit", "n_items", "cart_value", "revenue",
                        "incentive_cost"),
    },
    "inventory_snapshots": {
        "category_id": _CATEGORY,
        **_non_negative("location_id", "day_index", "stock_start", "arrivals", "on_order",
                        "demand", "sales", "lost_sales", "stock_end", "capacity", "unit_price",
                        "unit_cost", "holding_cost", "stockout_cost"),
    },
    "inventory_orders": {
        "category_id": _CATEGORY,
        "action": _ids(6),
        "action_mask": ValueRule(minimum=1, maximum=2**6 - 1),
        "planning_days": ValueRule(minimum=1),
        **_non_negative("location_id", "day_index", "order_multiple", "quantity",
                        "demand_7d_mean", "stock_on_hand", "capacity", "lead_time_days",
                        "ordering_cost"),
    },
    "ads": {
        "vertical": ValueRule(allowed=_CATEGORY_NAMES),
        "action": _ids(5),
        "hour": ValueRule(minimum=0, maximum=23),
        "end_hour": ValueRule(minimum=1, maximum=24),
        "traffic_share_elapsed": ValueRule(minimum=0, maximum=1),
        **_non_negative("bid_multiplier", "bid", "daily_budget", "planned_spend",
                        "impressions", "clicks", "conversions", "spend"),
    },
    "pricing_changes": {
        "category_id": _CATEGORY,
        "action": _ids(5),
        **_non_negative("market_id", "day_index", "price_multiplier", "list_price", "price",
                        "unit_cost", "competitor_price", "stock", "season_days"),
    },
    "pricing_sales": {
        "category_id": _CATEGORY,
        **_non_negative("market_id", "day_index", "price", "units_sold", "revenue",
                        "stock_end"),
    },
}
"""Column domains the schemas describe only in words, by dataset and column: categories and
action ids (the decision domains' action counts), and columns that cannot be negative (prices,
quantities, costs, counts). ``value_rules`` checks that every named column exists."""


def value_rules(schema: SourceSchema) -> dict[str, ValueRule]:
    """The value rules of a dataset (``ValueError`` if one names a column it lacks)."""
    rules = VALUE_RULES.get(schema.name, {})
    unknown = [c for c in rules if c not in schema.polars_schema]
    if unknown:
        raise ValueError(f"value rules of {schema.name} name unknown column(s) "
                         f"{', '.join(unknown)}")
    return rules




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
