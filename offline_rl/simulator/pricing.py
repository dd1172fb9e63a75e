"""Dynamic pricing: the daily price of a SKU (an item in a market) with limited stock.

One episode is one SKU over a selling season of ``horizon`` days, starting with a stock that
is not replenished. Each morning the shop sets the price to ``m * list_price`` with ``m`` one
of ``price_multipliers`` (0.8, 0.9, 1.0, 1.1, 1.2 — the action is its index), rounded to the
cent. Demand of the day:

    units ~ Poisson(base * weekly_profile[weekday] * m ** -elasticity
                    * 2 * sigmoid(-competitor_sensitivity * log(m / c))
                    * visibility * G),   G ~ Gamma(demand_shape, 1 / demand_shape)

capped by the stock on hand, where ``c = competitor price / list price``. The parameters
(``PricingConfig``):

* demand level: ``base`` is the SKU's base daily demand (units at list price, at par with the
  competitor, on an average weekday), lognormal across SKUs with median ``demand_median`` and
  log-spread ``demand_sigma``; ``weekly_profile`` is the weekday seasonality (Saturday peak);
  ``demand_shape`` sets the day-to-day noise (Gamma-Poisson, lower is noisier);
* price response: ``elasticity`` is the category's own-price elasticity
  (``category_elasticity``, electronics most and beauty least elastic) times a latent
  per-SKU factor, lognormal with log-spread ``elasticity_noise``, that the shop does not know;
* competition: the competitor's price is a mean-reverting random walk in log(competitor /
  list price) around a per-SKU offset (spread ``competitor_offset_sigma``), pulled back by
  ``competitor_reversion`` a day with daily steps of ``competitor_step_sigma``; undercutting
  it wins share along a logistic curve of slope ``competitor_sensitivity`` (share 1 at par,
  at most 2). The shop sees the competitor's quoted price, in cents;
* stock: the opening stock covers ``stock_days_range`` days of base demand (uniform);
  ``visibility`` falls linearly from 1 to ``low_stock_floor`` as the stock drops below
  ``low_stock_days`` days of base demand (a broken assortment sells less).

Reward: the day's margin, ``units * (price - unit_cost)``. The episode ends after ``horizon``
days or when the stock sells out, whichever comes first; unsold stock is worth nothing at the
end of the season, so a high price that leaves stock on the shelf loses margin.

SKUs (``n_markets`` per catalogue item) have a fixed base demand, elasticity factor and
competitor offset drawn from the world's seed; list price and cost come from the catalogue.

State features: the cost over the list price, the category's elasticity / 3, the quoted
competitor price over the list price, log(1 + base demand) / 4, log(list price) / 5 (with
the demand level, the scale of the day's margin), stock cover (stock over the base demand of
the days left, capped at 3, / 3), the day index / horizon and the weekday (one-hot). The
pricing service logs with each decision the context it prices from (the category's
elasticity estimate, demand planning's base-demand forecast of the SKU, the length of the
season), so the features can be rebuilt from the logs exactly (``offline_rl.domains.pricing``).

Behaviour policy (cost-plus with weekend promotions and price tests): each multiplier ``m``
gets softmax weight ``-|m - m*| / behavior_temperature`` around the cost-plus target ``m* =
unit_cost * (1 + behavior_markup) / list_price``; from Friday to Sunday
``behavior_promo_share`` of the mass goes to the promotional prices 0.8 and 0.9 (the weekend
deals half the range runs); and ``behavior_epsilon`` of the SKU-days are price tests at a
uniformly drawn multiplier. The logged probability is that of the price charged. It ignores
elasticity, the competitor and the stock, and promotes around the weekend peak, when demand
needs no help, so pricing by elasticity, competitor and stock cover does clearly better
(``heuristic_policy``). The defaults keep 20% of decisions as price tests (as much as the
shop's recommendation logging explores) and a temperature of 0.1 (neighbouring prices keep
about a third of the target's weight): with less variation in the logged prices, a week of
logs does not show what the other prices would have earned.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from offline_rl.data.schemas import PRICING_CHANGES, PRICING_SALES
from offline_rl.simulator.base import PolicyFn, Simulation, sample_actions
from offline_rl.simulator.serving import SHOP, LoggingPolicy
from offline_rl.simulator.world import World

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class PricingConfig:
    """Dynamics and behaviour-policy parameters of the pricing domain.

    Attributes:
        horizon: Days per episode.
        n_markets: Markets per catalogue item; the SKU pool has items x markets SKUs.
        price_multipliers: Multipliers on the list price (the actions), ascending.
        category_elasticity: Own-price elasticity per category (``world.CATEGORIES`` order).
        elasticity_noise: Log-scale spread of the latent per-SKU elasticity factor.
        competitor_sensitivity: Slope of the demand share in log(price / competitor price).
        demand_median: Median base daily demand across SKUs (units, at list price, at par
            with the competitor).
        demand_sigma: Log-scale spread of base demand across SKUs.
        weekly_profile: Demand multiplier per weekday, Monday first.
        demand_shape: Gamma shape of the day-to-day demand noise (lower is noisier).
        competitor_offset_sigma: Spread of the SKUs' mean log(competitor / list price).
        competitor_step_sigma: Daily step of the competitor's log price.
        competitor_reversion: Daily pull of the competitor's log price to its mean.
        stock_days_range: Range of the opening stock in days of base demand.
        low_stock_days: Stock (days of base demand) below which visibility falls.
        low_stock_floor: Visibility with an empty shelf.
        behavior_markup: Cost-plus markup of the behaviour policy.
        behavior_temperature: Softmax temperature of the behaviour policy (multiplier units).
        behavior_promo_share: Probability mass on the promotional prices (0.8, 0.9) on
            Friday to Sunday.
        behavior_epsilon: Share of price tests (a uniformly drawn multiplier).
    """

    horizon: int = 14
    n_markets: int = 60
    price_multipliers: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.2)
    category_elasticity: tuple[float, ...] = (2.2, 1.8, 1.2, 0.8, 2.0, 1.2)
    elasticity_noise: float = 0.15
    competitor_sensitivity: float = 3.0
    demand_median: float = 8.0
    demand_sigma: float = 0.6
    weekly_profile: tuple[float, ...] = (0.85, 0.85, 0.9, 1.0, 1.1, 1.35, 0.95)
    demand_shape: float = 8.0
    competitor_offset_sigma: float = 0.08
    competitor_step_sigma: float = 0.03
    competitor_reversion: float = 0.2
    stock_days_range: tuple[float, float] = (8.0, 30.0)
    low_stock_days: float = 2.0
    low_stock_floor: float = 0.5
    behavior_markup: float = 0.6
    behavior_temperature: float = 0.1
    behavior_promo_share: float = 0.5
    behavior_epsilon: float = 0.2


def feature_names() -> list[str]:
    """Names of the state features, in order."""
    return (["cost_ratio", "elasticity", "competitor_ratio", "log_demand", "log_list_price",
             "stock_cover", "day_frac"] + [f"weekday_{d}" for d in WEEKDAYS])


@dataclass(frozen=True)
class PricingPool:
    """Fixed attributes of every priced SKU (index ``k``: item ``k % n_items``, market
    ``k // n_items``)."""

    item: np.ndarray
    market: np.ndarray
    list_price: np.ndarray
    cost: np.ndarray
    base_demand: np.ndarray
    category_elasticity: np.ndarray
    elasticity: np.ndarray
    competitor_offset: np.ndarray

    @property
    def n_skus(self) -> int:
        return int(self.item.shape[0])


@dataclass
class PricingBatch:
    """State of a batch of pricing episodes at the opening of day ``t``."""

    sku: np.ndarray
    t: np.ndarray
    weekday0: np.ndarray
    stock: np.ndarray
    log_competitor: np.ndarray
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class PricingStep:
    """Outcome of one day per SKU (rows already done: zeros)."""

    price: np.ndarray
    units: np.ndarray
    revenue: np.ndarray
    margin: np.ndarray
    stock_end: np.ndarray
    sold_out: np.ndarray
    reward: np.ndarray
    done: np.ndarray


class PricingSimulator:
    """Vectorised dynamics of many pricing episodes at once."""

    name = "pricing"

    def __init__(self, world: World, config: PricingConfig | None = None) -> None:
        self.world = world
        self.config = config or PricingConfig()
        cfg = self.config
        if len(cfg.category_elasticity) != len(world.catalogue.reference_price):
            raise ValueError("category_elasticity needs one value per category")
        self.n_actions = len(cfg.price_multipliers)
        self.feature_names = feature_names()
        self.observation_size = len(self.feature_names)
        self.multipliers = np.asarray(cfg.price_multipliers, dtype=np.float64)
        self.weekly = np.asarray(cfg.weekly_profile, dtype=np.float64)
        self.pool = self._make_pool()

    def _make_pool(self) -> PricingPool:
        cfg = self.config
        cat = self.world.catalogue
        n = cat.n_items * cfg.n_markets
        rng = np.random.default_rng([self.world.config.seed, 4004])
        k = np.arange(n)
        item = k % cat.n_items
        cat_el = np.asarray(cfg.category_elasticity)[cat.category_id[item]]
        return PricingPool(
            item=item, market=k // cat.n_items, list_price=cat.price[item], cost=cat.cost[item],
            base_demand=cfg.demand_median * rng.lognormal(0.0, cfg.demand_sigma, n),
            category_elasticity=cat_el,
            elasticity=cat_el * rng.lognormal(0.0, cfg.elasticity_noise, n),
            competitor_offset=rng.normal(0.0, cfg.competitor_offset_sigma, n),
        )

    # -- state ---------------------------------------------------------------------------
    def reset(self, n: int, rng: np.random.Generator) -> PricingBatch:
        """``n`` episodes of random SKUs starting on random weekdays."""
        return self.start_episodes(rng.integers(0, self.pool.n_skus, n),
                                   rng.integers(0, 7, n), rng)

    def start_episodes(self, sku: np.ndarray, weekday0: np.ndarray,
                       rng: np.random.Generator) -> PricingBatch:
        """Episodes of ``sku`` starting on ``weekday0`` (0 = Monday) with a random stock."""
        cfg = self.config
        n = sku.shape[0]
        days = rng.uniform(*cfg.stock_days_range, n)
        stock = np.maximum(np.round(days * self.pool.base_demand[sku]), 1).astype(np.int64)
        log_comp = self.pool.competitor_offset[sku] + rng.normal(
            0.0, cfg.competitor_step_sigma, n)
        return PricingBatch(sku=sku.astype(np.int64), t=np.zeros(n, dtype=np.int64),
                            weekday0=weekday0.astype(np.int64), stock=stock,
                            log_competitor=log_comp, done=np.zeros(n, dtype=bool))

    def weekday(self, s: PricingBatch) -> np.ndarray:
        return (s.weekday0 + s.t) % 7

    def competitor_price(self, s: PricingBatch) -> np.ndarray:
        """The competitor's quoted price (rounded to the cent), as the shop sees it."""
        return np.round(self.pool.list_price[s.sku] * np.exp(s.log_competitor), 2)

    def observe(self, s: PricingBatch) -> np.ndarray:
        """Feature matrix ``[batch, observation_size]`` (float32)."""
        cfg = self.config
        p = self.pool
        base = p.base_demand[s.sku]
        days_left = np.maximum(cfg.horizon - s.t, 1)
        cover = np.minimum(s.stock / (base * days_left), 3.0) / 3.0
        cols = np.stack([
            p.cost[s.sku] / p.list_price[s.sku], p.category_elasticity[s.sku] / 3.0,
            self.competitor_price(s) / p.list_price[s.sku], np.log1p(base) / 4.0,
            np.log(p.list_price[s.sku]) / 5.0, cover, s.t / cfg.horizon,
        ], axis=1)
        return np.concatenate([cols, np.eye(7)[self.weekday(s)]], axis=1).astype(np.float32)

    def action_mask(self, s: PricingBatch) -> np.ndarray | None:
        """Every price multiplier is always allowed."""
        return None

    def behavior_probs(self, s: PricingBatch) -> np.ndarray:
        """Behaviour policy's action probabilities ``[batch, n_actions]``."""
        cfg = self.config
        p = self.pool
        want = p.cost[s.sku] * (1.0 + cfg.behavior_markup) / p.list_price[s.sku]
        logit = -np.abs(self.multipliers[None, :] - want[:, None]) / cfg.behavior_temperature
        w = np.exp(logit - logit.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        promo = np.zeros(self.n_actions)
        promo[np.isin(self.multipliers, (0.8, 0.9))] = 1.0
        promo /= max(promo.sum(), 1.0)
        share = cfg.behavior_promo_share * (self.weekday(s) >= 4)[:, None]
        w = (1.0 - share) * w + share * promo[None, :]
        return (1.0 - cfg.behavior_epsilon) * w + cfg.behavior_epsilon / self.n_actions

    # -- dynamics ------------------------------------------------------------------------
    def expected_demand(self, s: PricingBatch, multiplier: np.ndarray) -> np.ndarray:
        """Mean demand of the day at ``multiplier`` (before the day-to-day noise)."""
        cfg = self.config
        p = self.pool
        base = p.base_demand[s.sku]
        rel = np.log(multiplier) - s.log_competitor  # log(price / competitor)
        share = 2.0 / (1.0 + np.exp(cfg.competitor_sensitivity * rel))
        shelf = np.clip(s.stock / (cfg.low_stock_days * base), 0.0, 1.0)
        visibility = cfg.low_stock_floor + (1.0 - cfg.low_stock_floor) * shelf
        return (base * self.weekly[self.weekday(s)] * multiplier ** -p.elasticity[s.sku]
                * share * visibility)

    def step(self, s: PricingBatch, action: np.ndarray,
             rng: np.random.Generator) -> PricingStep:
        """Prices and sells one day, then moves the competitor, in place."""
        cfg = self.config
        p = self.pool
        n = s.sku.shape[0]
        live = ~s.done
        mult = self.multipliers[np.asarray(action, dtype=np.int64)]
        price = np.round(p.list_price[s.sku] * mult, 2)
        k = cfg.demand_shape
        lam = self.expected_demand(s, mult) * rng.gamma(k, 1.0 / k, n) * live
        units = np.minimum(rng.poisson(lam), s.stock)
        revenue = units * price
        margin = units * (price - p.cost[s.sku])
        stock_end = s.stock - units
        sold_out = live & (stock_end == 0)
        off = p.competitor_offset[s.sku]
        moved = (s.log_competitor + cfg.competitor_reversion * (off - s.log_competitor)
                 + rng.normal(0.0, cfg.competitor_step_sigma, n))
        s.log_competitor = np.where(live, moved, s.log_competitor)
        s.stock = stock_end
        s.t = s.t + live
        done = ~live | sold_out | (s.t >= cfg.horizon)
        s.done = done.copy()
        return PricingStep(price=price, units=units, revenue=revenue, margin=margin,
                           stock_end=stock_end, sold_out=sold_out,
                           reward=margin.astype(np.float64), done=done)


def heuristic_policy(sim: PricingSimulator, min_cover: float = 1.0) -> PolicyFn:
    """Prices for margin: the multiplier with the highest expected margin of the day under the
    category's elasticity and the competitor's price, among those at which the stock lasts
    the days left (``min_cover``; the highest price when none does). A reference point that
    beats the behaviour policy.
    """
    cfg = sim.config
    idx = {name: i for i, name in enumerate(sim.feature_names)}
    mult = sim.multipliers[None, :]

    def policy(obs: np.ndarray) -> np.ndarray:
        cost = obs[:, idx["cost_ratio"]][:, None]
        el = obs[:, idx["elasticity"]][:, None] * 3.0
        comp = obs[:, idx["competitor_ratio"]][:, None]
        share = 2.0 / (1.0 + np.exp(cfg.competitor_sensitivity * np.log(mult / comp)))
        demand = mult ** -el * share  # relative to the base demand
        lasts = obs[:, idx["stock_cover"]][:, None] * 3.0 >= min_cover * demand
        lasts[:, -1] = True
        return np.where(lasts, (mult - cost) * demand, -np.inf).argmax(axis=1).astype(np.int64)

    return policy


# -- landing logs ----------------------------------------------------------------------------
EVENTS_PER_SKU_EPISODE = 80.0
"""Clickstream events per pricing episode started, to turn ``events_per_day`` into SKUs: at
the demo's 40,000 events a day, 500 seasons start a day, nearly the whole assortment (7,200
SKUs over 14-day seasons) is priced, and the nightly window of 7 start days holds about 14,000
decisions."""


def generate_pricing(
    world: World, config: PricingConfig, day: dt.date, rng: np.random.Generator,
    events_per_day: int, logging: LoggingPolicy = SHOP,
) -> dict[str, pl.DataFrame]:
    """Pricing episodes starting on ``day`` under the behaviour policy.

    SKUs are priced in ``horizon`` staggered cohorts (cohort ``day.toordinal() % horizon``
    starts a new episode on ``day``), so every SKU has one episode at a time; the rows of an
    episode fall on ``day`` and up to ``horizon - 1`` following days. The cohorts are a fixed
    shuffle of the SKU pool (seeded by the world), so every day's episodes mix items and
    markets; ``events_per_day / EVENTS_PER_SKU_EPISODE`` of the cohort's SKUs start.
    """
    sim = logging.wrap(PricingSimulator(world, config))
    cfg = sim.config
    pool = sim.pool
    per_day = min(pool.n_skus // cfg.horizon,
                  max(1, int(round(events_per_day / EVENTS_PER_SKU_EPISODE))))
    cohorts = np.random.default_rng([world.config.seed, 4005]).permutation(pool.n_skus)
    sku = np.sort(cohorts[day.toordinal() % cfg.horizon::cfg.horizon][:per_day])
    state = sim.start_episodes(sku, np.full(per_day, day.weekday()), rng)
    rec: dict[str, list[np.ndarray]] = {k: [] for k in (
        "alive", "t", "action", "prob", "stock", "competitor", "price", "units", "revenue",
        "margin", "stock_end", "sold_out")}
    for _ in range(cfg.horizon):
        alive = ~state.done
        if not alive.any():
            break
        probs = sim.behavior_probs(state)
        action = sample_actions(probs, rng)
        rec["alive"].append(alive)
        rec["t"].append(state.t.copy())
        rec["action"].append(action)
        rec["prob"].append(probs[np.arange(per_day), action])
        rec["stock"].append(state.stock.copy())
        rec["competitor"].append(sim.competitor_price(state))
        out = sim.step(state, action, rng)
        for key, val in (("price", out.price), ("units", out.units), ("revenue", out.revenue),
                         ("margin", out.margin), ("stock_end", out.stock_end),
                         ("sold_out", out.sold_out)):
            rec[key].append(val)
    arr = {k: np.stack(v) for k, v in rec.items()}  # [days, per_day]
    keep = arr["alive"]
    k = np.broadcast_to(sku[None, :], keep.shape)[keep]
    t = arr["t"][keep]
    midnight = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
    day_start = midnight + t * 86_400_000_000
    base = pl.DataFrame({
        "item_id": pl.Series(pool.item[k], dtype=pl.Int64),
        "market_id": pl.Series(pool.market[k], dtype=pl.Int32),
        "category_id": pl.Series(world.catalogue.category_id[pool.item[k]], dtype=pl.Int32),
        "day_index": pl.Series(t, dtype=pl.Int32),
        "change_ts": day_start + rng.integers(0, 1_800_000_000, k.shape[0]),
        "sales_ts": day_start + 86_340_000_000 + rng.integers(0, 60_000_000, k.shape[0]),
        "action": pl.Series(arr["action"][keep], dtype=pl.Int32),
        "price_multiplier": sim.multipliers[arr["action"][keep]],
        "list_price": pool.list_price[k],
        "price": arr["price"][keep],
        "unit_cost": pool.cost[k],
        "competitor_price": arr["competitor"][keep],
        "stock": arr["stock"][keep],
        "elasticity_estimate": pool.category_elasticity[k],
        "demand_forecast": pool.base_demand[k],
        "season_days": pl.Series(np.full(k.shape[0], cfg.horizon), dtype=pl.Int32),
        "behavior_prob": arr["prob"][keep],
        "units_sold": arr["units"][keep],
        "stock_end": arr["stock_end"][keep],
        "sold_out": arr["sold_out"][keep],
    }).with_columns(
        pl.col("change_ts", "sales_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        revenue=(pl.col("units_sold") * pl.col("price")).round(2),
        margin=(pl.col("units_sold") * (pl.col("price") - pl.col("unit_cost"))).round(2),
        sku_id=pl.format("i{}-m{}", pl.col("item_id").cast(pl.String).str.zfill(3),
                         pl.col("market_id").cast(pl.String).str.zfill(2)),
    ).with_columns(
        episode_id=pl.format("{}-{}", pl.lit(day.strftime("%Y%m%d")), pl.col("sku_id")),
    ).with_columns(
        _row=pl.format("{}-d{}", pl.col("episode_id"),
                       pl.col("day_index").cast(pl.String).str.zfill(2)),
    )
    changes = base.with_columns(change_id=pl.format("{}-price", pl.col("_row"))).sort(
        "change_ts", "change_id")
    sales = base.with_columns(sales_id=pl.format("{}-sales", pl.col("_row"))).sort(
        "sales_ts", "sales_id")
    return {
        PRICING_CHANGES.name: PRICING_CHANGES.conform(changes, logging.name),
        PRICING_SALES.name: PRICING_SALES.conform(sales),
    }


SIMULATION = Simulation(config=PricingConfig(), make=PricingSimulator, generate=generate_pricing)
"""The pricing domain's part of the simulated shop."""
