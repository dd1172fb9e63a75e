"""Replenishment: how much to order each day for one SKU (an item at a location).

One episode is one SKU over a weekly planning episode of ``horizon`` (7) days. Each morning,
after the day's deliveries have arrived, the shop orders ``floor(m * 7 * mean7)`` units, where
``mean7`` is the SKU's mean daily demand over the last 7 days and ``m`` is one of
``order_multiples`` (weeks of demand: 0, 0.5, 1, 1.5, 2, 3; the action is its index). An order
arrives ``lead_time`` days later (fixed per SKU, drawn from ``lead_time_range`` = 2-5 days),
at the opening of that day, before its sales. An order may not push the inventory position
(on hand + on order) above the SKU's storage ``capacity``: ``action_mask`` masks those actions
(ordering nothing is always allowed).

SKUs: ``n_locations`` (50) locations stock every catalogue item, so the pool has items x
locations SKUs, each with a fixed base daily demand (log-normal around ``demand_median`` = 10
units with log-scale spread ``demand_sigma`` = 0.6), lead time, and capacity of
``capacity_weeks_range`` (2-3.5) weeks of base demand, all drawn from the world's seed; price
and unit cost come from the catalogue item (margin rates of about 14-64% of the price). An
episode opens with ``initial_stock_weeks_range`` (0.3-1.5) weeks of base demand on hand (at
most the capacity), nothing on order, and a week of demand history.

Demand of day ``t``: Poisson(base * weekly_profile[weekday] * G) with G ~ Gamma(demand_shape,
1 / demand_shape), ``demand_shape`` = 6 (over-dispersed), and weekly seasonality
``weekly_profile`` (Monday first: 0.85, 0.85, 0.9, 1.0, 1.1, 1.35, 0.95; Saturday peaks).
Sales are demand capped by the stock on hand; the rest is lost (no backorders). Daily reward:

    (price - cost) * sales - holding_rate * cost * stock_end
    - (order_fixed_cost + order_unit_cost * quantity) * 1[quantity > 0]
    - stockout_penalty_rate * price * lost_sales

with ``holding_rate`` = 1% of the unit cost per unit and night, ``order_fixed_cost`` = 25 and
``order_unit_cost`` = 0.3 per unit (freight and handling; the purchase cost is in the sales
margin, charged when a unit sells), and ``stockout_penalty_rate`` = 20% of the price per unit
of lost demand (lost goodwill). The episode ends after ``horizon`` days; stock left then has no
further value in the episode's return.

State features: stock on hand, on order, and capacity headroom in weeks of trailing demand
(``/ max(7 * mean7, 1)``), lead time / 7, log(1 + mean7) / 4, log(1 + price) / 5, the item's
margin rate, the day index / horizon and the weekday (one-hot). ``MaskedInventorySimulator``
appends the action mask as 0/1 features (the layout of the inventory transitions).

Behaviour policy (reorder point / order-up-to): when the inventory position is below
``mean7 * (lead_time + behavior_safety_days)`` it wants to order up to
``behavior_cycle_days`` more days of demand, i.e. ``m* = (target - position) / (7 * mean7)``
weeks, otherwise ``m* = 0``; the allowed actions get softmax weights ``-|m - m*| /
behavior_temperature`` (the buyers' adjustments around the rule's suggestion: about half a
week by default), mixed with ``behavior_epsilon`` (20%) uniform exploration over the allowed
actions. Masked actions have probability 0, allowed ones more than 0. Its safety stock (half a
day) is thin for the lead-time demand and the weekly peak, so stock-outs are common, and it
orders as if the week went on, also orders that arrive after the episode's end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from offline_rl.data.schemas import INVENTORY_ORDERS, INVENTORY_SNAPSHOTS
from offline_rl.simulator.base import PolicyFn, Simulation, sample_actions
from offline_rl.simulator.serving import SHOP, LoggingPolicy
from offline_rl.simulator.world import World

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class InventoryConfig:
    """Dynamics and behaviour-policy parameters of the replenishment domain.

    Attributes:
        horizon: Days per planning episode (one order decision a day).
        n_locations: Locations per catalogue item; the SKU pool has items x locations SKUs.
        order_multiples: Order sizes in weeks of trailing mean demand (action i orders
            ``floor(order_multiples[i] * 7 * mean7)`` units); the first must be 0.
        demand_median: Median base daily demand across SKUs (units).
        demand_sigma: Log-scale spread of base demand across SKUs.
        weekly_profile: Demand multiplier per weekday, Monday first.
        demand_shape: Gamma shape of the day-to-day demand noise (lower is noisier).
        lead_time_range: Smallest and largest lead time in days (inclusive).
        capacity_weeks_range: Range of capacity in weeks of base demand.
        initial_stock_weeks_range: Range of the opening stock in weeks of base demand.
        holding_rate: Holding cost per unit and night as a share of unit cost.
        order_fixed_cost: Cost of placing an order (any size above 0).
        order_unit_cost: Freight and handling per unit ordered.
        stockout_penalty_rate: Penalty per unit of lost sales as a share of price.
        behavior_safety_days: Behaviour reorder point: days of demand beyond the lead time.
        behavior_cycle_days: Behaviour order-up-to level: days of demand above the reorder
            point.
        behavior_temperature: Softmax temperature (weeks) of the behaviour policy.
        behavior_epsilon: Uniform exploration share over allowed actions.
    """

    horizon: int = 7
    n_locations: int = 50
    order_multiples: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    demand_median: float = 10.0
    demand_sigma: float = 0.6
    weekly_profile: tuple[float, ...] = (0.85, 0.85, 0.9, 1.0, 1.1, 1.35, 0.95)
    demand_shape: float = 6.0
    lead_time_range: tuple[int, int] = (2, 5)
    capacity_weeks_range: tuple[float, float] = (2.0, 3.5)
    initial_stock_weeks_range: tuple[float, float] = (0.3, 1.5)
    holding_rate: float = 0.01
    order_fixed_cost: float = 25.0
    order_unit_cost: float = 0.3
    stockout_penalty_rate: float = 0.2
    behavior_safety_days: float = 0.5
    behavior_cycle_days: float = 7.0
    behavior_temperature: float = 0.5
    behavior_epsilon: float = 0.2


def feature_names() -> list[str]:
    """Names of the state features, in order."""
    return (["stock_weeks", "on_order_weeks", "headroom_weeks", "lead_time_weeks",
             "log_demand", "log_price", "margin_rate", "day_frac"]
            + [f"weekday_{d}" for d in WEEKDAYS])


def action_names(config: InventoryConfig | None = None) -> list[str]:
    """Action names, in action order: ``order_<weeks>w`` (``order_0_5w`` is half a week)."""
    multiples = (config or InventoryConfig()).order_multiples
    return [f"order_{m:g}w".replace(".", "_") for m in multiples]


def mask_feature_names(config: InventoryConfig | None = None) -> list[str]:
    """Names of the action-mask features: ``allowed_<action name>``, in action order."""
    return [f"allowed_{a}" for a in action_names(config)]


@dataclass(frozen=True)
class SkuPool:
    """Fixed attributes of every SKU (index ``k``: item ``k % n_items``, location
    ``k // n_items``)."""

    item: np.ndarray
    location: np.ndarray
    base_demand: np.ndarray
    lead_time: np.ndarray
    capacity: np.ndarray
    price: np.ndarray
    cost: np.ndarray

    @property
    def n_skus(self) -> int:
        return int(self.item.shape[0])


@dataclass
class InventoryBatch:
    """State of a batch of SKU episodes at the opening of day ``t`` (after arrivals).

    ``pipe[:, j]`` holds the units arriving at the opening of day ``t + 1 + j``; ``history``
    the demand of the last 7 days (latest last).
    """

    sku: np.ndarray
    t: np.ndarray
    weekday0: np.ndarray
    on_hand: np.ndarray
    pipe: np.ndarray
    history: np.ndarray
    arrived: np.ndarray
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class InventoryStep:
    """Outcome of one day per SKU (rows already done: zeros)."""

    quantity: np.ndarray
    on_order: np.ndarray
    demand: np.ndarray
    sales: np.ndarray
    lost_sales: np.ndarray
    stock_end: np.ndarray
    sales_margin: np.ndarray
    holding_cost: np.ndarray
    ordering_cost: np.ndarray
    stockout_cost: np.ndarray
    reward: np.ndarray
    done: np.ndarray


class InventorySimulator:
    """Vectorised dynamics of many SKU episodes at once."""

    name = "inventory"

    def __init__(self, world: World, config: InventoryConfig | None = None) -> None:
        self.world = world
        self.config = config or InventoryConfig()
        cfg = self.config
        if cfg.order_multiples[0] != 0.0:
            raise ValueError("order_multiples[0] must be 0 (ordering nothing)")
        self.n_actions = len(cfg.order_multiples)
        self.feature_names = feature_names()
        self.observation_size = len(self.feature_names)
        self.multiples = np.asarray(cfg.order_multiples, dtype=np.float64)
        self.weekly = np.asarray(cfg.weekly_profile, dtype=np.float64)
        self.pool = self._make_pool()

    def _make_pool(self) -> SkuPool:
        cfg = self.config
        cat = self.world.catalogue
        n = cat.n_items * cfg.n_locations
        rng = np.random.default_rng([self.world.config.seed, 2002])
        k = np.arange(n)
        item = k % cat.n_items
        base = cfg.demand_median * rng.lognormal(0.0, cfg.demand_sigma, n)
        lo, hi = cfg.lead_time_range
        weeks = rng.uniform(*cfg.capacity_weeks_range, n)
        return SkuPool(
            item=item, location=k // cat.n_items, base_demand=base,
            lead_time=rng.integers(lo, hi + 1, n),
            capacity=np.ceil(weeks * 7.0 * base).astype(np.int64),
            price=cat.price[item], cost=cat.cost[item],
        )

    # -- state ---------------------------------------------------------------------------
    def reset(self, n: int, rng: np.random.Generator) -> InventoryBatch:
        """``n`` episodes of random SKUs starting on random weekdays."""
        return self.start_episodes(rng.integers(0, self.pool.n_skus, n),
                                   rng.integers(0, 7, n), rng)

    def start_episodes(self, sku: np.ndarray, weekday0: np.ndarray,
                       rng: np.random.Generator) -> InventoryBatch:
        """Episodes of ``sku`` starting on ``weekday0`` (0 = Monday), with a week of demand
        history and a random opening stock."""
        cfg = self.config
        n = sku.shape[0]
        base = self.pool.base_demand[sku]
        past = (weekday0[:, None] + np.arange(-7, 0)[None, :]) % 7
        history = self._demand(base[:, None] * self.weekly[past], rng, (n, 7))
        stock = np.floor(rng.uniform(*cfg.initial_stock_weeks_range, n) * 7.0 * base)
        stock = np.minimum(stock, self.pool.capacity[sku]).astype(np.int64)
        return InventoryBatch(
            sku=sku.astype(np.int64), t=np.zeros(n, dtype=np.int64),
            weekday0=weekday0.astype(np.int64), on_hand=stock,
            pipe=np.zeros((n, cfg.lead_time_range[1]), dtype=np.int64),
            history=history, arrived=np.zeros(n, dtype=np.int64), done=np.zeros(n, dtype=bool),
        )

    def _demand(self, mean: np.ndarray, rng: np.random.Generator,
                shape: tuple[int, ...]) -> np.ndarray:
        k = self.config.demand_shape
        return rng.poisson(mean * rng.gamma(k, 1.0 / k, shape)).astype(np.int64)

    def weekday(self, s: InventoryBatch) -> np.ndarray:
        return (s.weekday0 + s.t) % 7

    def mean7(self, s: InventoryBatch) -> np.ndarray:
        return s.history.mean(axis=1)

    def quantities(self, s: InventoryBatch) -> np.ndarray:
        """Units each action would order ``[batch, n_actions]``."""
        return np.floor(self.multiples[None, :] * 7.0 * self.mean7(s)[:, None]).astype(np.int64)

    def position(self, s: InventoryBatch) -> np.ndarray:
        return s.on_hand + s.pipe.sum(axis=1)

    def action_mask(self, s: InventoryBatch) -> np.ndarray:
        """Orders that keep the inventory position within capacity (action 0 always)."""
        room = self.pool.capacity[s.sku] - self.position(s)
        mask = self.quantities(s) <= room[:, None]
        mask[:, 0] = True
        return mask

    def observe(self, s: InventoryBatch) -> np.ndarray:
        """Feature matrix ``[batch, observation_size]`` (float32)."""
        cfg = self.config
        week = np.maximum(7.0 * self.mean7(s), 1.0)
        pool = self.pool
        on_order = s.pipe.sum(axis=1)
        head = np.maximum(pool.capacity[s.sku] - s.on_hand - on_order, 0)
        cols = np.stack([
            s.on_hand / week, on_order / week, head / week, pool.lead_time[s.sku] / 7.0,
            np.log1p(self.mean7(s)) / 4.0, np.log1p(pool.price[s.sku]) / 5.0,
            (pool.price[s.sku] - pool.cost[s.sku]) / pool.price[s.sku],
            s.t / cfg.horizon,
        ], axis=1)
        return np.concatenate([cols, np.eye(7)[self.weekday(s)]], axis=1).astype(np.float32)

    def behavior_probs(self, s: InventoryBatch) -> np.ndarray:
        """Behaviour policy's probabilities ``[batch, n_actions]`` (0 on masked actions)."""
        cfg = self.config
        mean7 = np.maximum(self.mean7(s), 1e-3)
        pos = self.position(s)
        reorder = mean7 * (self.pool.lead_time[s.sku] + cfg.behavior_safety_days)
        target = reorder + mean7 * cfg.behavior_cycle_days
        want = np.where(pos < reorder, (target - pos) / (7.0 * mean7), 0.0)
        mask = self.action_mask(s)
        logit = -np.abs(self.multiples[None, :] - want[:, None]) / cfg.behavior_temperature
        w = np.where(mask, np.exp(logit - logit.max(axis=1, keepdims=True)), 0.0)
        w /= w.sum(axis=1, keepdims=True)
        uniform = mask / mask.sum(axis=1, keepdims=True)
        return (1.0 - cfg.behavior_epsilon) * w + cfg.behavior_epsilon * uniform

    def decision_columns(self, s: InventoryBatch) -> dict[str, np.ndarray]:
        """The raw order fields of each SKU's decision at ``s`` (before the order), named as
        in ``raw_inventory_orders``: what a demand replay reads besides the day's outcome."""
        pool = self.pool
        return {"stock_on_hand": s.on_hand.copy(), "inventory_position": self.position(s),
                "demand_7d_mean": self.mean7(s), "capacity": pool.capacity[s.sku],
                "lead_time_days": pool.lead_time[s.sku], "unit_price": pool.price[s.sku],
                "unit_cost": pool.cost[s.sku]}

    @staticmethod
    def outcome_columns(out: InventoryStep) -> dict[str, np.ndarray]:
        """The day's logged outcome fields (``raw_inventory_snapshots``) of a step."""
        return {"demand": out.demand, "quantity": out.quantity, "stock_end": out.stock_end}

    # -- dynamics ------------------------------------------------------------------------
    def step(self, s: InventoryBatch, action: np.ndarray,
             rng: np.random.Generator) -> InventoryStep:
        """Orders, sells one day and opens the next (with its arrivals), in place."""
        cfg = self.config
        pool = self.pool
        n = s.sku.shape[0]
        rows = np.arange(n)
        live = ~s.done
        action = np.asarray(action, dtype=np.int64)
        qty = np.where(live, self.quantities(s)[rows, action], 0)
        lead = pool.lead_time[s.sku]
        s.pipe[rows, lead - 1] += qty
        on_order = s.pipe.sum(axis=1)
        base = pool.base_demand[s.sku] * self.weekly[self.weekday(s)]
        demand = np.where(live, self._demand(base, rng, (n,)), 0)
        sales = np.minimum(demand, s.on_hand)
        lost = demand - sales
        stock_end = s.on_hand - sales
        price, cost = pool.price[s.sku], pool.cost[s.sku]
        sales_margin = (price - cost) * sales
        holding = np.where(live, cfg.holding_rate * cost * stock_end, 0.0)
        ordering = (cfg.order_fixed_cost + cfg.order_unit_cost * qty) * (qty > 0)
        stockout = cfg.stockout_penalty_rate * price * lost
        reward = sales_margin - holding - ordering - stockout
        # open the next day
        s.history = np.where(live[:, None], np.c_[s.history[:, 1:], demand], s.history)
        arrived = np.where(live, s.pipe[:, 0], 0)
        s.pipe = np.where(live[:, None], np.c_[s.pipe[:, 1:], np.zeros(n, dtype=np.int64)],
                          s.pipe)
        s.on_hand = np.where(live, stock_end + arrived, s.on_hand)
        s.arrived = arrived
        s.t = s.t + live
        done = s.t >= cfg.horizon
        s.done = done.copy()
        return InventoryStep(
            quantity=qty, on_order=on_order, demand=demand, sales=sales, lost_sales=lost,
            stock_end=stock_end, sales_margin=sales_margin, holding_cost=holding,
            ordering_cost=ordering, stockout_cost=stockout, reward=reward.astype(np.float64),
            done=done,
        )


class MaskedInventorySimulator:
    """The inventory simulator whose observation ends with the action mask.

    ``observe`` returns ``InventorySimulator.observe`` followed by one 0/1 float32 column per
    action (``allowed_<action name>``, 1.0 when the order fits the capacity): the feature
    layout of the inventory transitions, so a policy trained on them reads the mask from its
    input. Everything else is the wrapped simulator's.
    """

    def __init__(self, sim: InventorySimulator) -> None:
        self.sim = sim
        self.name = sim.name
        self.n_actions = sim.n_actions
        self.feature_names = sim.feature_names + mask_feature_names(sim.config)
        self.observation_size = len(self.feature_names)

    def observe(self, s: InventoryBatch) -> np.ndarray:
        mask = self.sim.action_mask(s).astype(np.float32)
        return np.concatenate([self.sim.observe(s), mask], axis=1)

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not set above: reset, step, behavior_probs, ...
        return getattr(self.sim, name)


def heuristic_policy(sim: InventorySimulator | MaskedInventorySimulator,
                     safety_days: float = 3.0, cycle_days: float = 3.5) -> PolicyFn:
    """A base-stock policy with a proper safety stock (beats the behaviour policy).

    Orders up to ``lead_time + safety_days + cycle_days`` days of trailing demand when the
    position falls below ``lead_time + safety_days`` days, taking the largest multiple that
    does not overshoot by more than half a step and fits the capacity headroom; never orders
    what would arrive after the episode ends.
    """
    idx = {name: i for i, name in enumerate(sim.feature_names)}
    mult = sim.multiples
    horizon = sim.config.horizon

    def policy(obs: np.ndarray) -> np.ndarray:
        pos = obs[:, idx["stock_weeks"]] + obs[:, idx["on_order_weeks"]]
        lead = obs[:, idx["lead_time_weeks"]]
        reorder = lead + safety_days / 7.0
        want = np.where(pos < reorder, reorder + cycle_days / 7.0 - pos, 0.0)
        arrives_in_time = obs[:, idx["day_frac"]] * horizon + lead * 7.0 < horizon - 0.5
        head = obs[:, idx["headroom_weeks"]] * (1.0 - 1e-4)
        ok = (mult[None, :] <= want[:, None] + 0.25) & (mult[None, :] <= head[:, None])
        ok &= arrives_in_time[:, None] | (mult[None, :] == 0.0)
        return np.where(ok, np.arange(mult.shape[0])[None, :], 0).max(axis=1).astype(np.int64)

    return policy


# -- landing logs ----------------------------------------------------------------------------
EVENTS_PER_SKU_EPISODE = 200.0
"""Clickstream events per SKU episode started, to turn ``events_per_day`` into SKUs."""


def generate_inventory(
    world: World, config: InventoryConfig, day: dt.date, rng: np.random.Generator,
    events_per_day: int, logging: LoggingPolicy = SHOP,
) -> dict[str, pl.DataFrame]:
    """Replenishment episodes starting on ``day`` under the behaviour policy.

    SKUs are planned in ``horizon`` staggered cohorts (cohort ``day.toordinal() % horizon``
    starts a new episode on ``day``), so every SKU has one episode at a time; the rows of an
    episode fall on ``day`` and the following ``horizon - 1`` days.
    """
    # a served policy reads the transitions' layout: the observation followed by the mask
    sim = logging.wrap(MaskedInventorySimulator(InventorySimulator(world, config)))
    cfg = sim.config
    pool = sim.pool
    per_day = min(pool.n_skus // cfg.horizon,
                  max(1, int(round(events_per_day / EVENTS_PER_SKU_EPISODE))))
    sku = (day.toordinal() % cfg.horizon) * per_day + np.arange(per_day)
    state = sim.start_episodes(sku, np.full(per_day, day.weekday()), rng)
    rec: dict[str, list[np.ndarray]] = {k: [] for k in (
        "t", "stock_start", "arrivals", "position", "mean7", "action", "prob", "mask", "quantity",
        "on_order", "demand", "sales", "lost", "stock_end", "sales_margin", "holding",
        "ordering", "stockout")}
    bits = (1 << np.arange(sim.n_actions))[None, :]
    for _ in range(cfg.horizon):
        probs = sim.behavior_probs(state)
        mask = sim.action_mask(state)
        action = sample_actions(probs, rng)
        rec["t"].append(state.t.copy())
        rec["stock_start"].append(state.on_hand.copy())
        rec["arrivals"].append(state.arrived.copy())
        rec["position"].append(sim.position(state))
        rec["mean7"].append(sim.mean7(state))
        rec["action"].append(action)
        rec["prob"].append(probs[np.arange(per_day), action])
        rec["mask"].append((mask * bits).sum(axis=1))
        out = sim.step(state, action, rng)
        for key, val in (("quantity", out.quantity), ("on_order", out.on_order),
                         ("demand", out.demand), ("sales", out.sales),
                         ("lost", out.lost_sales), ("stock_end", out.stock_end),
                         ("sales_margin", out.sales_margin), ("holding", out.holding_cost),
                         ("ordering", out.ordering_cost), ("stockout", out.stockout_cost)):
            rec[key].append(val)
        if state.done.all():
            break
    arr = {k: np.stack(v).reshape(-1) for k, v in rec.items()}  # step-major, all alive
    steps = len(rec["t"])
    k = np.tile(sku, steps)
    midnight = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
    day_us = 86_400_000_000
    day_start = midnight + arr["t"] * day_us
    order_ts = day_start + 6 * 3_600_000_000 + rng.integers(0, 3_600_000_000, k.shape[0])
    snapshot_ts = day_start + 23 * 3_600_000_000 + 1_800_000_000 + rng.integers(
        0, 1_200_000_000, k.shape[0])
    lead = pool.lead_time[k]
    base = pl.DataFrame({
        "sku": pl.Series(k, dtype=pl.Int64),
        "item_id": pl.Series(pool.item[k], dtype=pl.Int64),
        "location_id": pl.Series(pool.location[k], dtype=pl.Int32),
        "category_id": pl.Series(world.catalogue.category_id[pool.item[k]], dtype=pl.Int32),
        "day_index": pl.Series(arr["t"], dtype=pl.Int32),
        "order_ts": order_ts, "snapshot_ts": snapshot_ts,
        "stock_start": arr["stock_start"], "arrivals": arr["arrivals"],
        "on_order": arr["on_order"], "demand": arr["demand"], "sales": arr["sales"],
        "lost_sales": arr["lost"], "stock_end": arr["stock_end"],
        "capacity": pool.capacity[k], "unit_price": pool.price[k], "unit_cost": pool.cost[k],
        "sales_margin": arr["sales_margin"], "holding_cost": arr["holding"],
        "stockout_cost": arr["stockout"],
        "action": pl.Series(arr["action"], dtype=pl.Int32),
        "order_multiple": sim.multiples[arr["action"]],
        "quantity": arr["quantity"], "behavior_prob": arr["prob"],
        "action_mask": pl.Series(arr["mask"], dtype=pl.Int32),
        "demand_7d_mean": arr["mean7"], "stock_on_hand": arr["stock_start"],
        "inventory_position": arr["position"],
        "lead_time_days": pl.Series(lead, dtype=pl.Int32),
        "planning_days": pl.Series(np.full(k.shape[0], cfg.horizon), dtype=pl.Int32),
        "ordering_cost": arr["ordering"],
    }).with_columns(
        sku_id=pl.format("i{}-l{}", pl.col("item_id").cast(pl.String).str.zfill(3),
                         pl.col("location_id").cast(pl.String).str.zfill(2)),
        arrival_date=pl.when(pl.col("quantity") > 0).then(
            pl.lit(day) + pl.duration(days=pl.col("day_index") + pl.col("lead_time_days"))),
    ).with_columns(
        episode_id=pl.format("{}-{}", pl.lit(day.strftime("%Y%m%d")), pl.col("sku_id")),
    ).with_columns(
        pl.col("order_ts", "snapshot_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        _row=pl.format("{}-d{}", pl.col("episode_id"),
                       pl.col("day_index").cast(pl.String).str.zfill(2)),
    )
    snapshots = base.with_columns(snapshot_id="_row").sort("snapshot_ts", "snapshot_id")
    orders = base.with_columns(order_id=pl.format("{}-order", pl.col("_row"))).sort(
        "order_ts", "order_id")
    return {
        INVENTORY_SNAPSHOTS.name: INVENTORY_SNAPSHOTS.conform(snapshots),
        INVENTORY_ORDERS.name: INVENTORY_ORDERS.conform(orders, logging.name),
    }


SIMULATION = Simulation(config=InventoryConfig(), make=InventorySimulator,
                        generate=generate_inventory)
"""The inventory domain's part of the simulated shop."""
