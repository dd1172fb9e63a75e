"""Schemas of the landing-zone datasets: the contract between log producers and the pipeline.

Each dataset lives under ``<data home>/landing/<name>/date=YYYY-MM-DD/`` as Parquet, CSV or
JSON-lines files (CSV and JSON lines optionally gzip-compressed; ``offline_rl.data.ingest``
reads them) and is loaded into the DuckDB table ``raw_<name>``. A file has these columns by
name; an *optional* column may be left out (its rows read null; the decision datasets'
``policy_version`` is one). Text values are parsed to the column's type, Parquet types are
converted where no value is lost. Rows are then validated against the key, time, probability
and value rules. ``docs/schemas.md`` is generated from this module by :func:`schemas_markdown`
(``offline-rl schemas``), with the reader's formats and rules taken from the reader itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass(frozen=True)
class Column:
    """One column of a landing dataset."""

    name: str
    dtype: pl.DataType
    doc: str
    nullable: bool = True
    optional: bool = False
    """A file may leave the column out; its rows then read null."""


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
        rules: Allowed values of columns beyond their type, by column: categories and
            action ids, columns that cannot be negative (prices, quantities, costs, counts).
    """

    name: str
    source: str
    doc: str
    columns: tuple[Column, ...]
    key: str
    time_column: str
    probability_column: str | None = None
    rules: Mapping[str, ValueRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = {c.name for c in self.columns}
        unknown = [c for c in self.rules if c not in names]
        if unknown:
            raise ValueError(f"value rules of {self.name} name unknown column(s) "
                             f"{', '.join(unknown)}")

    @property
    def table(self) -> str:
        return f"raw_{self.name}"

    @property
    def polars_schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if not c.nullable]

    def conform(self, frame: pl.DataFrame, policy_version: str | None = None) -> pl.DataFrame:
        """``frame``'s schema columns in order and type; where the schema logs the serving
        policy, its decision rows (those with a probability) name ``policy_version``."""
        names = self.polars_schema.names()
        if POLICY_VERSION in names and POLICY_VERSION not in frame.columns:
            decided = pl.col(self.probability_column or POLICY_VERSION).is_not_null()
            frame = frame.with_columns(pl.when(decided).then(pl.lit(policy_version))
                                       .otherwise(None).cast(pl.String).alias(POLICY_VERSION))
        # cast's keys are typed as a union and Mapping keys are invariant: str keys, loosely typed
        dtypes: Mapping[Any, pl.DataType] = dict(self.polars_schema)
        return frame.select(names).cast(dtypes)

    def complete(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with the optional columns it lacks (a table loaded before they existed)
        added as nulls."""
        absent = [c for c in self.optional if c not in frame.columns]
        return frame.with_columns(pl.lit(None, self.polars_schema[c]).alias(c) for c in absent) \
            if absent else frame

    @property
    def optional(self) -> list[str]:
        """Columns a file may leave out (read as null)."""
        return [c.name for c in self.columns if c.optional]


TS = pl.Datetime("us", "UTC")

POLICY_VERSION = "policy_version"
SHOP_RULE = "shop_rule"
"""The ``policy_version`` of decisions served by the shop's own rule (no export)."""


def _non_negative(*columns: str) -> dict[str, ValueRule]:
    return {c: ValueRule(minimum=0) for c in columns}


def _ids(n: int) -> ValueRule:
    return ValueRule(allowed=tuple(range(n)))


_CATEGORY_NAMES = ("electronics", "home", "fashion", "beauty", "sports", "toys")
_DEVICES = ValueRule(allowed=("mobile", "desktop"))
_CATEGORY = _ids(len(_CATEGORY_NAMES))


def policy_version_column(what: str) -> Column:
    """The optional ``policy_version`` column of a dataset that logs decisions (``what``: the
    rows that are decisions)."""
    return Column(POLICY_VERSION, pl.String(),
                  f"{what}: the policy that served the decision (the export version, e.g. "
                  "v0003, or shop_rule); optional (a file may leave it out), null when "
                  "unknown.", optional=True)


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
        policy_version_column("Impressions"),
    ),
    rules={
        "event_type": ValueRule(allowed=("page_view", "impression", "click", "purchase")),
        "device": _DEVICES,
        "category_id": _CATEGORY,
        **_non_negative("user_segment", "page", "slot", "price"),
    },
)

CART = SourceSchema(
    name="cart",
    source="cart",
    doc="Cart-page events: visits, the incentive decision at each visit, checkouts, abandons.",
    key="event_id",
    time_column="event_ts",
    probability_column="behavior_prob",
    columns=(
        Column("event_id", pl.String(), "Unique event id.", nullable=False),
        Column("event_ts", TS, "Event time (UTC).", nullable=False),
        Column("event_type", pl.String(), "visit | offer | checkout | abandon.", nullable=False),
        Column("cart_id", pl.String(), "Cart id (one cart is one episode).", nullable=False),
        Column("user_id", pl.String(), "User id.", nullable=False),
        Column("user_segment", pl.Int32(), "CRM segment of the user (0-based).", nullable=False),
        Column("device", pl.String(), "mobile | desktop.", nullable=False),
        Column("visit", pl.Int32(), "Cart-page visit index within the cart (0-based).",
               nullable=False),
        Column("cart_value", pl.Float64(), "Merchandise value of the cart at the visit.",
               nullable=False),
        Column("cart_margin", pl.Float64(), "Merchandise margin of the cart at the visit (sum "
               "of price minus unit cost of its items).", nullable=False),
        Column("n_items", pl.Int32(), "Items in the cart at the visit.", nullable=False),
        Column("action", pl.Int32(), "Offers: the incentive shown (0 none, 1 coupon 5%, "
               "2 coupon 15%, 3 free shipping); every visit logs one offer decision."),
        Column("offer", pl.String(), "Offers: none | coupon_5 | coupon_15 | free_shipping."),
        Column("behavior_prob", pl.Float64(),
               "Offers: probability the logging policy gave to the action shown."),
        Column("coupon_affinity", pl.Float64(), "Offers: the CRM's score of the user's past "
               "coupon use, in (0, 1), as the decision service saw it."),
        Column("ref_event_id", pl.String(),
               "Checkouts and abandons: the offer event of the visit they end."),
        Column("revenue", pl.Float64(),
               "Checkouts: amount paid (value minus discount plus shipping fee unless waived)."),
        Column("margin", pl.Float64(),
               "Checkouts: merchandise margin (price minus unit cost) before the incentive."),
        Column("incentive_cost", pl.Float64(), "Checkouts: cost of the incentive (discount or "
               "absorbed shipping); the reward is margin minus incentive_cost."),
        policy_version_column("Offers"),
    ),
    rules={
        "event_type": ValueRule(allowed=("visit", "offer", "checkout", "abandon")),
        "device": _DEVICES,
        "action": _ids(4),
        "offer": ValueRule(allowed=("none", "coupon_5", "coupon_15", "free_shipping")),
        **_non_negative("user_segment", "visit", "n_items", "cart_value", "revenue",
                        "incentive_cost"),
    },
)

_SKU_COLUMNS = (
    Column("sku_id", pl.String(), "Stock-keeping unit: item at a location.", nullable=False),
    Column("item_id", pl.Int64(), "Catalogue item.", nullable=False),
    Column("location_id", pl.Int32(), "Warehouse / store of the SKU.", nullable=False),
    Column("category_id", pl.Int32(), "Category of the item.", nullable=False),
    Column("episode_id", pl.String(), "Replenishment planning episode (SKU and start day).",
           nullable=False),
    Column("day_index", pl.Int32(), "Day within the episode (0-based).", nullable=False),
)

INVENTORY_SNAPSHOTS = SourceSchema(
    name="inventory_snapshots",
    source="inventory",
    doc="End-of-day stock snapshot per SKU: stock, arrivals, demand, sales and daily costs.",
    key="snapshot_id",
    time_column="snapshot_ts",
    columns=(
        Column("snapshot_id", pl.String(), "Unique snapshot id.", nullable=False),
        Column("snapshot_ts", TS, "Snapshot time (UTC), at the end of the day.",
               nullable=False),
        *_SKU_COLUMNS,
        Column("stock_start", pl.Int64(), "Units on hand at the opening, after arrivals.",
               nullable=False),
        Column("arrivals", pl.Int64(), "Units received at the opening.", nullable=False),
        Column("on_order", pl.Int64(), "Units ordered and not yet received (after today's "
               "order).", nullable=False),
        Column("demand", pl.Int64(), "Units customers wanted.", nullable=False),
        Column("sales", pl.Int64(), "Units sold (demand capped by stock).", nullable=False),
        Column("lost_sales", pl.Int64(), "Demand not served for lack of stock.", nullable=False),
        Column("stock_end", pl.Int64(), "Units on hand at the close.", nullable=False),
        Column("capacity", pl.Int64(), "Storage capacity of the SKU (on hand plus on order).",
               nullable=False),
        Column("unit_price", pl.Float64(), "Selling price.", nullable=False),
        Column("unit_cost", pl.Float64(), "Purchase cost per unit.", nullable=False),
        Column("sales_margin", pl.Float64(), "sales * (unit_price - unit_cost).", nullable=False),
        Column("holding_cost", pl.Float64(), "Cost of holding stock_end overnight.",
               nullable=False),
        Column("stockout_cost", pl.Float64(), "Penalty for lost_sales (lost goodwill).",
               nullable=False),
    ),
    rules={
        "category_id": _CATEGORY,
        **_non_negative("location_id", "day_index", "stock_start", "arrivals", "on_order",
                        "demand", "sales", "lost_sales", "stock_end", "capacity", "unit_price",
                        "unit_cost", "holding_cost", "stockout_cost"),
    },
)

INVENTORY_ORDERS = SourceSchema(
    name="inventory_orders",
    source="inventory",
    doc="Daily replenishment decision per SKU (an order of 0 units is logged too).",
    key="order_id",
    time_column="order_ts",
    probability_column="behavior_prob",
    columns=(
        Column("order_id", pl.String(), "Unique decision id.", nullable=False),
        Column("order_ts", TS, "Decision time (UTC), in the morning before sales.",
               nullable=False),
        *_SKU_COLUMNS,
        Column("action", pl.Int32(), "Order-size action: index into order_multiple's choices.",
               nullable=False),
        Column("order_multiple", pl.Float64(), "Order size in weeks of trailing mean demand.",
               nullable=False),
        Column("quantity", pl.Int64(), "Units ordered.", nullable=False),
        Column("behavior_prob", pl.Float64(),
               "Probability the logging policy gave to the action.", nullable=False),
        Column("action_mask", pl.Int32(), "Allowed actions as a bitmask: bit a is set when "
               "action a fits the capacity (action 0 always).", nullable=False),
        Column("demand_7d_mean", pl.Float64(), "Mean daily demand over the last 7 days.",
               nullable=False),
        Column("stock_on_hand", pl.Int64(), "Units on hand at the decision.", nullable=False),
        Column("inventory_position", pl.Int64(), "On hand plus on order before this order.",
               nullable=False),
        Column("capacity", pl.Int64(), "Storage capacity of the SKU.", nullable=False),
        Column("lead_time_days", pl.Int32(), "Days from order to arrival.", nullable=False),
        Column("planning_days", pl.Int32(), "Length of the SKU's planning episode in days "
               "(day_index runs from 0 to planning_days - 1).", nullable=False),
        Column("arrival_date", pl.Date(), "Date the order arrives (null when quantity is 0)."),
        Column("ordering_cost", pl.Float64(), "Fixed plus per-unit ordering cost (0 when no "
               "order).", nullable=False),
        policy_version_column("Orders"),
    ),
    rules={
        "category_id": _CATEGORY,
        "action": _ids(6),
        "action_mask": ValueRule(minimum=1, maximum=2**6 - 1),
        "planning_days": ValueRule(minimum=1),
        **_non_negative("location_id", "day_index", "order_multiple", "quantity",
                        "demand_7d_mean", "stock_on_hand", "capacity", "lead_time_days",
                        "ordering_cost"),
    },
)

ADS = SourceSchema(
    name="ads",
    source="ads",
    doc="Bid decision and delivery per campaign and daypart (one campaign-day is one "
        "episode).",
    key="event_id",
    time_column="event_ts",
    probability_column="behavior_prob",
    columns=(
        Column("event_id", pl.String(), "Unique campaign-daypart id.", nullable=False),
        Column("event_ts", TS, "Start of the daypart (UTC), when the bid is set.",
               nullable=False),
        Column("campaign_id", pl.String(), "Campaign id.", nullable=False),
        Column("vertical", pl.String(), "Product category the campaign advertises.",
               nullable=False),
        Column("episode_id", pl.String(), "Campaign-day id (the day in the campaign's market "
               "time zone; it may end on the next UTC date).", nullable=False),
        Column("hour", pl.Int32(), "First hour of the daypart in the market's local time "
               "(0-23).", nullable=False),
        Column("end_hour", pl.Int32(), "Local hour at which the daypart ends (exclusive; 24 "
               "for the day's last daypart).", nullable=False),
        Column("action", pl.Int32(), "Bid-multiplier action (index into the multipliers).",
               nullable=False),
        Column("bid_multiplier", pl.Float64(), "Multiplier on the campaign's base bid.",
               nullable=False),
        Column("bid", pl.Float64(), "Bid per click (base bid times multiplier).",
               nullable=False),
        Column("behavior_prob", pl.Float64(),
               "Probability the logging policy gave to the action.", nullable=False),
        Column("daily_budget", pl.Float64(), "The campaign's budget for the day.",
               nullable=False),
        Column("planned_spend", pl.Float64(), "Budget planner's expected spend of the day at "
               "the base bid (multiplier 1).", nullable=False),
        Column("budget_left", pl.Float64(), "Budget left at the start of the daypart.",
               nullable=False),
        Column("traffic_share_elapsed", pl.Float64(), "Pacing curve: planned share of the "
               "day's auctions before the daypart.", nullable=False),
        Column("cvr_factor", pl.Float64(), "Forecast factor on the campaign's conversion rate "
               "for the daypart's clicks.", nullable=False),
        Column("value_per_click", pl.Float64(), "Campaign's expected margin per click at its "
               "base conversion rate (factor 1), from its history.", nullable=False),
        Column("competitor_bid_forecast", pl.Float64(), "Bid-landscape forecast of the "
               "competing bid per click in the daypart.", nullable=False),
        Column("impressions", pl.Int64(), "Auctions won in the daypart.", nullable=False),
        Column("clicks", pl.Int64(), "Clicks.", nullable=False),
        Column("conversions", pl.Int64(), "Orders attributed to the clicks.", nullable=False),
        Column("spend", pl.Float64(), "Cost of the clicks.", nullable=False),
        Column("conversion_value", pl.Float64(), "Margin of the attributed orders; the reward "
               "is conversion_value minus spend.", nullable=False),
        Column("budget_exhausted", pl.Boolean(), "The budget ran out in this daypart "
               "(the campaign stops for the day).", nullable=False),
        policy_version_column("Bids"),
    ),
    rules={
        "vertical": ValueRule(allowed=_CATEGORY_NAMES),
        "action": _ids(5),
        "hour": ValueRule(minimum=0, maximum=23),
        "end_hour": ValueRule(minimum=1, maximum=24),
        "traffic_share_elapsed": ValueRule(minimum=0, maximum=1),
        **_non_negative("bid_multiplier", "bid", "daily_budget", "planned_spend",
                        "impressions", "clicks", "conversions", "spend"),
    },
)

_PRICING_SKU_COLUMNS = (
    Column("sku_id", pl.String(), "Priced SKU: item in a market.", nullable=False),
    Column("item_id", pl.Int64(), "Catalogue item.", nullable=False),
    Column("market_id", pl.Int32(), "Market (region / sales channel).", nullable=False),
    Column("category_id", pl.Int32(), "Category of the item.", nullable=False),
    Column("episode_id", pl.String(), "Pricing episode (SKU and start day).", nullable=False),
    Column("day_index", pl.Int32(), "Day within the episode (0-based).", nullable=False),
)

PRICING_CHANGES = SourceSchema(
    name="pricing_changes",
    source="pricing",
    doc="Daily price decision per SKU, set at the opening of the day.",
    key="change_id",
    time_column="change_ts",
    probability_column="behavior_prob",
    columns=(
        Column("change_id", pl.String(), "Unique decision id.", nullable=False),
        Column("change_ts", TS, "Time the price took effect (UTC).", nullable=False),
        *_PRICING_SKU_COLUMNS,
        Column("action", pl.Int32(), "Price-multiplier action (index into the multipliers).",
               nullable=False),
        Column("price_multiplier", pl.Float64(), "Multiplier on the list price.",
               nullable=False),
        Column("list_price", pl.Float64(), "List price.", nullable=False),
        Column("price", pl.Float64(), "Price set for the day.", nullable=False),
        Column("unit_cost", pl.Float64(), "Unit cost.", nullable=False),
        Column("competitor_price", pl.Float64(), "Competitor's quoted price seen at the "
               "decision.", nullable=False),
        Column("stock", pl.Int64(), "Units on hand at the decision.", nullable=False),
        Column("elasticity_estimate", pl.Float64(), "Own-price elasticity of the item's "
               "category the pricing service prices with (demand falls by about this many "
               "percent per percent of price).", nullable=False),
        Column("demand_forecast", pl.Float64(), "Demand planning's base daily demand of the "
               "SKU: units a day at list price, at par with the competitor, on an average "
               "weekday.", nullable=False),
        Column("season_days", pl.Int32(), "Length of the SKU's selling season (the episode) "
               "in days; stock left after it is not sold.", nullable=False),
        Column("behavior_prob", pl.Float64(),
               "Probability the logging policy gave to the action.", nullable=False),
        policy_version_column("Price changes"),
    ),
    rules={
        "category_id": _CATEGORY,
        "action": _ids(5),
        **_non_negative("market_id", "day_index", "price_multiplier", "list_price", "price",
                        "unit_cost", "competitor_price", "stock", "season_days"),
    },
)

PRICING_SALES = SourceSchema(
    name="pricing_sales",
    source="pricing",
    doc="Daily sales per priced SKU.",
    key="sales_id",
    time_column="sales_ts",
    columns=(
        Column("sales_id", pl.String(), "Unique row id.", nullable=False),
        Column("sales_ts", TS, "End of the sales day (UTC).", nullable=False),
        *_PRICING_SKU_COLUMNS,
        Column("price", pl.Float64(), "Price of the day.", nullable=False),
        Column("units_sold", pl.Int64(), "Units sold.", nullable=False),
        Column("revenue", pl.Float64(), "units_sold * price.", nullable=False),
        Column("margin", pl.Float64(), "units_sold * (price - unit_cost); the reward.",
               nullable=False),
        Column("stock_end", pl.Int64(), "Units left at the close.", nullable=False),
        Column("sold_out", pl.Boolean(), "Stock ran out (the episode ends).", nullable=False),
    ),
    rules={
        "category_id": _CATEGORY,
        **_non_negative("market_id", "day_index", "price", "units_sold", "revenue",
                        "stock_end"),
    },
)

SOURCES: dict[str, SourceSchema] = {
    s.name: s
    for s in (CLICKSTREAM, CART, INVENTORY_SNAPSHOTS, INVENTORY_ORDERS, ADS, PRICING_CHANGES,
              PRICING_SALES)
}
"""Every landing dataset, by name."""



# ---------------------------------------------------------------- the generated doc

_TYPE_NAMES = {pl.String(): "string", pl.Int32(): "int32", pl.Int64(): "int64",
               pl.Float64(): "float64", pl.Boolean(): "boolean", pl.Date(): "date",
               TS: "timestamp (UTC)"}


def _type_name(dtype: pl.DataType) -> str:
    return _TYPE_NAMES.get(dtype, str(dtype))


def schemas_markdown(schemas: Mapping[str, SourceSchema] | None = None) -> str:
    """``docs/schemas.md``: the landing contract as the reader applies it (formats, column and
    row rules from ``offline_rl.data.ingest``) and the columns of every dataset of ``schemas``
    (default: the built-in ``SOURCES``; ``offline-rl schemas`` passes every registered
    domain's)."""
    from offline_rl.data.readers import FORMATS
    from offline_rl.data.rules import IngestConfig, duration_text, value_rules

    config = IngestConfig()
    kinds = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSON lines"}
    formats = "; ".join(
        f"{kinds[kind]}: " + ", ".join(f"`*{s}`" for s, k in FORMATS.items() if k == kind)
        for kind in dict.fromkeys(FORMATS.values()))
    out = [
        "# Landing-zone schemas", "",
        "Generated from `offline_rl/data/schemas.py` and the reader's rules in "
        "`offline_rl/data/ingest.py` (`offline-rl schemas --output docs/schemas.md`).", "",
        "## Files", "",
        "- Folder: `<landing>/<dataset>/date=YYYY-MM-DD/` (the landing zone is "
        "`<data home>/landing` unless `--landing` or `$OFFLINE_RL_LANDING` names another "
        "folder or an fsspec URI); the folder date is the UTC date of each row's time column.",
        f"- Formats, by file name ({formats}); `.gz` files are gzip-compressed. Other names are "
        "rejected as an unsupported file type.",
        "- Names starting with `.` or `_` are skipped as files still being written or markers of "
        "the producer.",
        "- Text files: UTF-8 (a byte-order mark is ignored), one record per line (`\\n` or "
        "`\\r\\n`). CSV: a header line, `,` separators, `\"` quoting, an empty field for null. "
        "JSON lines: one object per line with a key per column, `null` for null. Text values "
        "are parsed to the column's type: timestamps ISO 8601 with an offset (`Z`, `+00:00` "
        "or `+0000`), dates `YYYY-MM-DD`, booleans `true`/`false`.",
        "- Parquet: the column types below, or a type that converts without loss (any integer "
        "type for an integer column, an integer or float type for a float column, a string "
        "parsed as in text files); timestamps must carry the UTC time zone.", "",
        "## Columns", "",
        "- Columns are matched by name, in any order. A column marked *may be left out* is "
        "optional: a file without it loads, its rows read null. Every other column must be "
        "there.",
        "- A file with a header (a CSV header line, a Parquet schema) whose columns are "
        "missing, unexpected, duplicated, or of a type that cannot be converted is rejected "
        "whole: one quarantine row with the reason, and the rest of the day still loads.",
        "- A JSON-lines file has no header: a (non-optional) key that no line of the file has "
        "rejects the file; a line that lacks a non-optional key, or has an unexpected key, "
        "quarantines only that line, with the keys named in the reason.",
        "- Unreadable, truncated or empty files, gzip streams that end early and text that is "
        "not UTF-8 are rejected whole too.", "",
        "## Rows", "",
        "A row that breaks a rule goes to the warehouse's `quarantine` table with its file, "
        "1-based row number (the CSV header is not a row), the reasons and the raw record "
        "(`offline-rl quarantine` lists it); the rest of the file loads. The rules:", "",
        "- a value that does not parse as the column's type;",
        "- null where the column's *nullable* is `no` (the key included);",
        "- the time column outside the partition's UTC day, or later than the load time plus "
        f"{duration_text(config.future_tolerance)};",
        "- the behaviour probability outside (0, 1];",
        "- NaN or infinity in a float column;",
        "- a value outside the column's *allowed values*;",
        f"- a string longer than {config.max_string_length:,} UTF-8 bytes;",
        "- text records: an empty line, malformed quoting, a wrong number of fields (CSV), "
        "malformed JSON or not an object (JSON lines), a last record without a line break;",
        "- a key seen earlier in the partition with different content (the first is kept); an "
        "exact re-delivery of a key is dropped and counted as a duplicate.", "",
    ]
    for schema in (SOURCES if schemas is None else schemas).values():
        rules = {name: rule.allowed_text() for name, rule in value_rules(schema).items()}
        if schema.probability_column:
            rules[schema.probability_column] = "(0, 1]"
        out += [f"## `{schema.name}` → `{schema.table}` ({schema.source})", "", schema.doc, "",
                f"Key: `{schema.key}`; partition by `{schema.time_column}`"
                + (f"; behaviour probability: `{schema.probability_column}`"
                   if schema.probability_column else ""), "",
                "| column | type | nullable | may be left out | allowed values | meaning |",
                "|---|---|---|---|---|---|"]
        out += [f"| `{c.name}` | {_type_name(c.dtype)} | {'yes' if c.nullable else 'no'} | "
                f"{'yes' if c.optional else ''} | {rules.get(c.name, '')} | "
                f"{c.doc.replace('|', '/')} |" for c in schema.columns]
        out.append("")
    return "\n".join(out)
