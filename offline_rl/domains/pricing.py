"""Dynamic pricing: the price multiplier of each SKU for the day, over its selling season.

Decision: every morning the pricing service sets the day's price of each SKU (a catalogue item
in a market) as a multiplier on its list price; the price holds until the next morning.

Actions (index = action id, ``PricingConfig.price_multipliers``): multipliers 0.8, 0.9, 1.0,
1.1 and 1.2 on the list price, named ``price_x0.80`` .. ``price_x1.20``. Every price is always
allowed (no mask features; the simulator masks none).

State features, in order, each built from the decision's row of ``raw_pricing_changes`` (the
pricing service logs the context it prices from with every decision) and equal to
``offline_rl.simulator.pricing.PricingSimulator.observe``; ``days_left`` is ``max(season_days
- day_index, 1)``:

* ``cost_ratio``: ``unit_cost / list_price``, how thin the margin is at list price;
* ``elasticity``: ``elasticity_estimate / 3``, the category's own-price elasticity;
* ``competitor_ratio``: ``competitor_price / list_price``, the competitor's quoted price;
* ``log_demand``: ``log(1 + demand_forecast) / 4``, the SKU's base daily demand;
* ``log_list_price``: ``log(list_price) / 5``, the price level; with the demand level it sets
  the scale of the day's margin, which the action values need;
* ``stock_cover``: ``min(stock / (demand_forecast * days_left), 3) / 3``, whether the stock
  on hand lasts the rest of the season at base demand (1/3) or runs out early (below);
* ``day_frac``: ``day_index / season_days``, how far into the season;
* ``weekday_mon`` .. ``weekday_sun``: the UTC weekday of the decision (one-hot).

Reward: the day's ``margin`` from ``raw_pricing_sales`` (units sold times price minus unit
cost), in currency units, undiscounted. Stock left at the end of the season earns nothing.

Episode: one SKU over its selling season (``episode_id``, ``season_days`` = 14 days by
default): one decision a day, ``day_index`` 0, 1, ... Its partition is its first day, the UTC
date of a decision minus its ``day_index`` (every row names its episode's start, so no
earlier partition is needed: ``lookback_days = 0``). It ends (``terminal``) on the day the
stock sells out (``sold_out``) or on the season's last day; until then its last loaded
decision is a ``timeout``. The day's partition and the ``horizon - 1`` days after it
(``lookahead_days``) hold every episode that starts on the day, whole, and only that day's
transitions claim it. A decision is kept only with its day's sales row (its reward): the
episode's days are the unbroken run from day 0, and a missing day ends it in a ``timeout``.

Behaviour policy (cost-plus with weekend promotions and price tests): a softmax over the
multipliers around the one that puts the price ``behavior_markup`` (60%) over the unit cost;
from Friday to Sunday ``behavior_promo_share`` (half) of the mass goes to the promotional
prices 0.8 and 0.9; and ``behavior_epsilon`` (20%) of the SKU-days are price tests at a
uniformly drawn multiplier. The logged ``behavior_prob`` is the probability of the multiplier
charged. It ignores the elasticity, the competitor and the stock. Parameters and the dynamics
(elasticities, weekly seasonality, competitor walk, stock visibility, demand noise):
``offline_rl.simulator.pricing``.

Segment column: ``market_id``, the market (region or sales channel) a SKU is sold in. Every
catalogue item is sold in every market, and each market's SKUs draw their own demand level,
latent elasticity and competitor price level, which the features describe; holding a market
out tests whether a pricing policy carries over to a market the shop is opening.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from offline_rl.data.schemas import PRICING_CHANGES, PRICING_SALES
from offline_rl.domains.base import Domain, daily_episode_transitions
from offline_rl.simulator.pricing import SIMULATION, WEEKDAYS, PricingConfig, feature_names

CHANGES = "pricing_changes"
SALES = "pricing_sales"

CONFIG = PricingConfig()
"""The pricing setup the logs follow (price multipliers and the longest season)."""

ACTIONS: tuple[str, ...] = tuple(f"price_x{m:.2f}" for m in CONFIG.price_multipliers)
FEATURES: tuple[str, ...] = tuple(feature_names())

EXTRA_COLUMNS = ("sku_id", "item_id", "market_id", "category_id", "day_index",
                 "price_multiplier", "price", "competitor_price", "stock", "units_sold",
                 "revenue", "stock_end", "sold_out")
"""Columns kept after the required ones: ids, the segment column and the day's outcome."""


def _feature_exprs() -> dict[str, pl.Expr]:
    """One expression per state feature on a decision's row (float64 until cast)."""
    list_price = pl.col("list_price")
    forecast = pl.col("demand_forecast")
    days_left = pl.max_horizontal(pl.col("season_days") - pl.col("day_index"), pl.lit(1))
    weekday = pl.col("change_ts").dt.weekday()  # 1 = Monday
    return {
        "cost_ratio": pl.col("unit_cost") / list_price,
        "elasticity": pl.col("elasticity_estimate") / 3.0,
        "competitor_ratio": pl.col("competitor_price") / list_price,
        "log_demand": forecast.log1p() / 4.0,
        "log_list_price": list_price.log() / 5.0,
        "stock_cover": pl.min_horizontal(pl.col("stock") / (forecast * days_left),
                                         pl.lit(3.0)) / 3.0,
        "day_frac": pl.col("day_index") / pl.col("season_days"),
        **{f"weekday_{d}": (weekday == i + 1).cast(pl.Float64) for i, d in enumerate(WEEKDAYS)},
    }


_EXPRS = _feature_exprs()
if tuple(_EXPRS) != FEATURES:  # the simulator's observation and the logs must agree
    raise RuntimeError(f"pricing features from the logs {list(_EXPRS)} differ from the "
                       f"simulator's {list(FEATURES)}")


def _first_problem(rows: pl.LazyFrame, key: str, checks: dict[str, pl.Expr], table: str,
                   what: str) -> None:
    """Raises ``ValueError`` naming the first row (by ``key``) that fails one of ``checks``."""
    flags = [f"_bad_{c}" for c in checks]
    first = (rows.select(key, *[c for c in checks if c != key],
                         **{f: e for f, e in zip(flags, checks.values(), strict=True)})
             .filter(pl.any_horizontal(flags))
             .with_columns(n=pl.len())
             .sort(key).head(1).collect())
    if first.height:
        row = first.row(0, named=True)
        field = next(c for c in checks if row[f"_bad_{c}"])
        raise ValueError(f"raw_{table}: {row['n']} {what}, e.g. {key} {row[key]!r}: "
                         f"{field} = {row[field]}")


def check_decisions(changes: pl.LazyFrame) -> None:
    """Raises ``ValueError`` naming the first decision the features cannot be built from.

    A decision is rejected when its action is not an action id, its list price or demand
    forecast is not positive, its elasticity estimate, cost or competitor price is not finite,
    its stock is negative, its season is shorter than a day or longer than the days the
    transitions read (``lookahead_days + 1``), or its ``day_index`` lies outside the season.
    """
    checks = {
        "action": ~pl.col("action").is_between(0, len(ACTIONS) - 1),
        "list_price": ~(pl.col("list_price") > 0),
        "demand_forecast": ~(pl.col("demand_forecast") > 0),
        "elasticity_estimate": ~pl.col("elasticity_estimate").is_finite(),
        "unit_cost": ~pl.col("unit_cost").is_finite(),
        "competitor_price": ~pl.col("competitor_price").is_finite(),
        "stock": pl.col("stock") < 0,
        "season_days": ~pl.col("season_days").is_between(1, CONFIG.horizon),
        "day_index": ~pl.col("day_index").is_between(0, pl.col("season_days") - 1),
    }
    _first_problem(changes, "change_id", checks, CHANGES,
                   "decision(s) the pricing features cannot be built from")


def check_sales(sales: pl.LazyFrame) -> None:
    """Raises ``ValueError`` naming the first sales row whose margin (the reward) is not
    finite, or that continues an episode after the day it sold out."""
    checks = {
        "margin": ~pl.col("margin").is_finite(),
        "sold_out": pl.col("sold_out")
        & (pl.col("day_index") < pl.col("day_index").max().over("episode_id")),
    }
    _first_problem(sales, "sales_id", checks, SALES, "sales row(s) unusable for rewards")


def build_pricing_transitions(
    raw: Mapping[str, pl.LazyFrame], *, sessions_from: dt.date, sessions_to: dt.date,
    data_end: dt.datetime,
) -> pl.LazyFrame:
    """Transitions of the SKU seasons whose first day lies in ``[sessions_from, sessions_to]``,
    as one lazy query over ``raw_pricing_changes`` joined to ``raw_pricing_sales``.

    Args:
        raw: ``{"pricing_changes": ..., "pricing_sales": ...}`` raw rows covering those days
            and up to ``lookahead_days`` after them.
        sessions_from: First start date to keep.
        sessions_to: Last start date to keep.
        data_end: End of the loaded data (exclusive, tz-aware): rows at or after it are
            ignored, and a season that has neither sold out nor reached its last day by then
            ends in a timeout.
    """
    if data_end.tzinfo is None:
        raise ValueError("data_end must be timezone-aware (UTC)")
    start = (pl.col("change_ts").dt.date()
             - pl.duration(days=pl.col("day_index"))).cast(pl.Date)
    changes = (raw[CHANGES].filter(pl.col("change_ts") < pl.lit(data_end))
               .with_columns(start_date=start)
               .filter(pl.col("start_date").is_between(sessions_from, sessions_to)))
    check_decisions(changes)
    sales = (raw[SALES].filter(pl.col("sales_ts") < pl.lit(data_end))
             .select("sales_id", "episode_id", "day_index", "units_sold", "revenue", "margin",
                     "stock_end", "sold_out")
             .join(changes.select("episode_id").unique(), on="episode_id", how="semi"))
    check_sales(sales)
    return daily_episode_transitions(
        changes.join(sales, on=["episode_id", "day_index"], how="inner"),
        ended=pl.col("sold_out") | (pl.col("day_index") == pl.col("season_days") - 1),
        reward=pl.col("margin"), features=_EXPRS, decision_id="change_id",
        decision_ts="change_ts", extra=EXTRA_COLUMNS)


DOMAIN = Domain(
    name="pricing",
    title="Which multiplier on the list price to charge for each SKU each day of its selling "
          "season, with a stock that is not replenished.",
    sources=(CHANGES, SALES),
    feature_names=FEATURES,
    action_names=ACTIONS,
    build_transitions=build_pricing_transitions,
    simulation=SIMULATION,
    landing=(PRICING_CHANGES, PRICING_SALES,),
    order=5,
    lookback_days=0,
    lookahead_days=CONFIG.horizon - 1,
    segment_column="market_id",
    progress_feature="day_frac",
    reward_doc="The day's margin: units sold times price minus unit cost.",
    episode_doc=f"One SKU over its {CONFIG.horizon}-day selling season, one price a day; it "
                "ends when the stock sells out or after the season's last day.",
    extra={"price_multipliers": list(CONFIG.price_multipliers), "reward_unit": "currency",
           "horizon_days": CONFIG.horizon},
    gate_max_weight_share=1.0,  # measured: see Domain.gate_max_weight_share
)
