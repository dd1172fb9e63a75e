"""Replenishment: how many weeks of demand to order each morning for one SKU.

Decision: every morning, after the day's deliveries have arrived and before the day's sales,
the replenishment service decides the order of each SKU (an item at a location). Orders are
sized in weeks of the SKU's trailing mean daily demand (``demand_7d_mean``).

Actions (index = action id, ``InventoryConfig.order_multiples``): order 0, 0.5, 1, 1.5, 2
or 3 weeks of demand (``floor(weeks * 7 * demand_7d_mean)`` units), named ``order_0w``,
``order_0_5w``, ..., ``order_3w``. An order may not push the inventory position (on hand plus
on order) above the SKU's storage capacity; such actions are masked (ordering nothing is
always allowed).

State features, in order, each built from the decision's row of ``raw_inventory_orders`` (and,
for the margin, the day's row of ``raw_inventory_snapshots``) and equal to
``offline_rl.simulator.inventory.InventorySimulator.observe`` followed by the mask; ``week``
is ``max(7 * demand_7d_mean, 1)`` units:

* ``stock_weeks``: ``stock_on_hand / week``, the stock at the decision;
* ``on_order_weeks``: ``(inventory_position - stock_on_hand) / week``, units ordered earlier
  and not received yet;
* ``headroom_weeks``: ``max(capacity - inventory_position, 0) / week``, room left for orders;
* ``lead_time_weeks``: ``lead_time_days / 7``;
* ``log_demand``: ``log(1 + demand_7d_mean) / 4``, the SKU's demand level;
* ``log_price``: ``log(1 + unit_price) / 5``, what a unit sold (or lost) is worth;
* ``margin_rate``: ``(unit_price - unit_cost) / unit_price``;
* ``day_frac``: ``day_index / planning_days``, how far into the planning episode;
* ``weekday_mon`` .. ``weekday_sun``: the UTC weekday of the decision (one-hot);
* ``allowed_order_0w`` .. ``allowed_order_3w``: 1.0 when the action fits the capacity
  (bit ``a`` of ``action_mask``), the mask features.

Reward: the day's ``sales_margin - holding_cost - ordering_cost - stockout_cost`` (margin of
the units sold, minus holding the closing stock overnight, the order's fixed and per-unit
freight, and the goodwill penalty on demand lost to a stock-out), in currency units,
undiscounted.

Episode: one SKU over its weekly planning episode (``episode_id``; ``planning_days`` = 7 by
default): one decision a day, ``day_index`` 0 to ``planning_days - 1``. Its partition is its
first day, the UTC date of a decision minus its ``day_index``: every row names its episode's
start, so no earlier partition is needed (``lookback_days = 0``) and the rows of episodes
that started earlier are never claimed. It ends (``terminal``) with the decision of its last
day; until that day is loaded, its last loaded decision is a ``timeout``. The day's raw
partition and the ``horizon - 1`` (6) after it (``lookahead_days``) hold every episode that
starts on the day, whole; rebuilt after those days are loaded, the partition is complete. A
decision whose day has no snapshot (reward unknown) ends the episode in a ``timeout`` at the
day before, and days after a missing day are not used.

Behaviour policy (reorder point / order-up-to with exploration): when the inventory position
falls below ``lead_time + behavior_safety_days`` days of trailing demand, order up to
``behavior_cycle_days`` more days of it, as a softmax over the allowed order sizes around the
wanted number of weeks (temperature half a week: the buyers' adjustments), mixed with
``behavior_epsilon`` (20%) uniform exploration over the allowed actions; the logged
``behavior_prob`` is the probability of the order placed. Its half-day safety stock ignores
demand noise and the weekly peak, and it keeps ordering when the episode's end is near.
Parameters and dynamics (demand, weekly profile, lead times, capacity, costs):
``offline_rl.simulator.inventory``.

Evaluation: orders do not change demand, so the gate decides on demand replay
(``offline_rl.domains.inventory_replay``): every held-out SKU-week is replayed under the
candidate against its logged demand, with the shop's bookkeeping (lead times, lost sales,
the cost rates fitted from the logged rewards), after checking that replaying the logged
orders reproduces the logs. The transitions keep the raw fields it reads
(``REPLAY_COLUMNS``).

Segment column: ``location_id``, the warehouse or store of the SKU. The same items are stocked
at every location with their own demand level, lead time and capacity, so holding locations
out tests whether a policy transfers to a new warehouse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from offline_rl.data.schemas import INVENTORY_ORDERS, INVENTORY_SNAPSHOTS
from offline_rl.domains.base import Domain, daily_episode_transitions
from offline_rl.domains.inventory_replay import REPLAY_COLUMNS, InventoryReplay
from offline_rl.simulator.inventory import (
    SIMULATION,
    WEEKDAYS,
    InventoryConfig,
    MaskedInventorySimulator,
    action_names,
    feature_names,
    mask_feature_names,
)

ORDERS = "inventory_orders"
SNAPSHOTS = "inventory_snapshots"

CONFIG = InventoryConfig()
"""Order sizes (the actions) and the longest planning episode the transitions read whole."""

ACTIONS: tuple[str, ...] = tuple(action_names(CONFIG))
MASK_FEATURES: tuple[str, ...] = tuple(mask_feature_names(CONFIG))
FEATURES: tuple[str, ...] = tuple(feature_names()) + MASK_FEATURES

EXTRA_COLUMNS = ("sku_id", "item_id", "location_id", "category_id", "day_index", "quantity",
                 "demand", "sales", "lost_sales", "stock_end", "stock_on_hand",
                 "inventory_position", "demand_7d_mean", "capacity", "lead_time_days",
                 "unit_price", "unit_cost")
"""Columns kept after the required ones: ids, the segment column, the day's outcome and the
raw fields the demand replay reads (``inventory_replay.REPLAY_COLUMNS``)."""


def _feature_exprs() -> dict[str, pl.Expr]:
    """One expression per state feature on a decision joined to its snapshot (float64)."""
    mean7 = pl.col("demand_7d_mean")
    week = pl.max_horizontal(7.0 * mean7, pl.lit(1.0))
    on_hand = pl.col("stock_on_hand")
    position = pl.col("inventory_position")
    weekday = pl.col("order_ts").dt.weekday()  # 1 = Monday
    exprs = {
        "stock_weeks": on_hand / week,
        "on_order_weeks": (position - on_hand) / week,
        "headroom_weeks": pl.max_horizontal(pl.col("capacity") - position, pl.lit(0)) / week,
        "lead_time_weeks": pl.col("lead_time_days") / 7.0,
        "log_demand": mean7.log1p() / 4.0,
        "log_price": pl.col("unit_price").log1p() / 5.0,
        "margin_rate": (pl.col("unit_price") - pl.col("unit_cost")) / pl.col("unit_price"),
        "day_frac": pl.col("day_index") / pl.col("planning_days"),
        **{f"weekday_{d}": (weekday == i + 1).cast(pl.Float64) for i, d in enumerate(WEEKDAYS)},
    }
    for a, name in enumerate(MASK_FEATURES):
        exprs[name] = ((pl.col("action_mask") // (1 << a)) % 2).cast(pl.Float64)
    return exprs


_EXPRS = _feature_exprs()
if not set(REPLAY_COLUMNS) <= set(EXTRA_COLUMNS):  # the replay reads them from the table
    raise RuntimeError("inventory transitions must keep the replay's columns")
if tuple(_EXPRS) != FEATURES:  # the simulator's observation and the logs must agree
    raise RuntimeError(f"inventory features from the logs {list(_EXPRS)} differ from the "
                       f"simulator's {list(FEATURES)}")


def check_decisions(orders: pl.LazyFrame) -> None:
    """Raises ``ValueError`` naming the first decision the features cannot be built from.

    A decision is rejected when its episode is longer than the raw days the transitions read
    (``lookahead_days + 1``), its ``day_index`` lies outside the episode, its action is not an
    action id, the ``action_mask`` does not allow it (or not ordering), or its trailing demand
    or stock is negative.
    """
    n = len(ACTIONS)
    checks = {
        "planning_days": ~pl.col("planning_days").is_between(1, CONFIG.horizon),
        "day_index": ~pl.col("day_index").is_between(0, pl.col("planning_days") - 1),
        "action": ~pl.col("action").is_between(0, n - 1),
        "action_mask": ((pl.col("action_mask") // (2 ** pl.col("action").clip(0, n - 1))) % 2
                        != 1) | (pl.col("action_mask") % 2 != 1)
        | ~pl.col("action_mask").is_between(0, 2 ** n - 1),
        "demand_7d_mean": ~(pl.col("demand_7d_mean") >= 0),
        "stock_on_hand": pl.col("stock_on_hand") < 0,
        "inventory_position": pl.col("inventory_position") < pl.col("stock_on_hand"),
    }
    bad = orders.filter(pl.any_horizontal(checks.values()))
    first = (bad.select("order_id", *checks, n=pl.len())
             .sort("order_id").head(1).collect())
    if first.height:
        row = first.row(0, named=True)
        problem = next(c for c, e in checks.items()
                       if first.select(e).item())
        raise ValueError(f"raw_{ORDERS}: {row['n']} decision(s) the inventory features cannot be "
                         f"built from, e.g. order_id {row['order_id']!r}: {problem} = "
                         f"{row[problem]} (action {row['action']})")


def check_snapshots(snapshots: pl.LazyFrame) -> None:
    """Raises ``ValueError`` naming the first snapshot whose price is not positive or whose
    reward parts are not finite."""
    checks = {
        "unit_price": ~(pl.col("unit_price") > 0),
        **{c: ~pl.col(c).is_finite() for c in
           ("unit_cost", "sales_margin", "holding_cost", "stockout_cost")},
    }
    first = (snapshots.filter(pl.any_horizontal(checks.values()))
             .select("snapshot_id", *(checks), n=pl.len()).sort("snapshot_id").head(1).collect())
    if first.height:
        row = first.row(0, named=True)
        problem = next(c for c, e in checks.items() if first.select(e).item())
        raise ValueError(f"raw_{SNAPSHOTS}: {row['n']} snapshot(s) unusable for rewards, e.g. "
                         f"snapshot_id {row['snapshot_id']!r}: {problem} = {row[problem]}")


def build_inventory_transitions(
    raw: Mapping[str, pl.LazyFrame], *, sessions_from: dt.date, sessions_to: dt.date,
    data_end: dt.datetime,
) -> pl.LazyFrame:
    """Transitions of the SKU episodes whose first day lies in ``[sessions_from, sessions_to]``,
    as one lazy query over ``raw_inventory_orders`` joined to ``raw_inventory_snapshots``.

    Args:
        raw: ``{"inventory_orders": ..., "inventory_snapshots": ...}`` raw rows covering those
            days and up to ``lookahead_days`` after them.
        sessions_from: First start date to keep.
        sessions_to: Last start date to keep.
        data_end: End of the loaded data (exclusive, tz-aware): rows at or after it are
            ignored, and an episode whose last day is not before it ends in a timeout.
    """
    if data_end.tzinfo is None:
        raise ValueError("data_end must be timezone-aware (UTC)")
    start = (pl.col("order_ts").dt.date()
             - pl.duration(days=pl.col("day_index"))).cast(pl.Date)
    orders = (raw[ORDERS].filter(pl.col("order_ts") < pl.lit(data_end))
              .with_columns(start_date=start)
              .filter(pl.col("start_date").is_between(sessions_from, sessions_to)))
    check_decisions(orders)
    snapshots = (raw[SNAPSHOTS].filter(pl.col("snapshot_ts") < pl.lit(data_end))
                 .select("episode_id", "day_index", "unit_price", "unit_cost", "demand",
                         "sales", "lost_sales", "stock_end", "sales_margin", "holding_cost",
                         "stockout_cost", "snapshot_id")
                 .join(orders.select("episode_id").unique(), on="episode_id", how="semi"))
    check_snapshots(snapshots)
    return daily_episode_transitions(
        orders.join(snapshots, on=["episode_id", "day_index"], how="inner"),
        ended=pl.col("day_index") == pl.col("planning_days") - 1,
        reward=pl.col("sales_margin") - pl.col("holding_cost") - pl.col("ordering_cost")
        - pl.col("stockout_cost"),
        features=_EXPRS, decision_id="order_id", decision_ts="order_ts", extra=EXTRA_COLUMNS)


DOMAIN = Domain(
    name="inventory",
    title="How many weeks of demand to order each morning for each SKU, within its storage "
          "capacity.",
    sources=(ORDERS, SNAPSHOTS),
    feature_names=FEATURES,
    action_names=ACTIONS,
    build_transitions=build_inventory_transitions,
    simulation=SIMULATION,
    landing=(INVENTORY_SNAPSHOTS, INVENTORY_ORDERS,),
    order=3,
    observe_as_logged=MaskedInventorySimulator,
    lookback_days=0,
    lookahead_days=CONFIG.horizon - 1,
    mask_features=MASK_FEATURES,
    segment_column="location_id",
    progress_feature="day_frac",
    reward_doc="Sales margin minus holding, ordering and stock-out costs of the day.",
    episode_doc=f"One SKU over a {CONFIG.horizon}-day planning episode, one order decision a "
                "day; it ends after its last day.",
    extra={"order_multiples_weeks": list(CONFIG.order_multiples), "reward_unit": "currency",
           "horizon_days": CONFIG.horizon},
    replay=InventoryReplay(FEATURES, CONFIG.order_multiples, MASK_FEATURES),
    gate_headline="replay",
)
