"""Cart interventions: whether and which incentive to show on the cart page.

One episode is one cart. Each time the user comes back to the cart page (a *visit*) the shop
chooses an action:

    0 nothing, 1 small coupon (``coupon_rates[0]``, 5%), 2 larger coupon (``coupon_rates[1]``,
    15%), 3 free shipping (the flat ``shipping_fee`` is waived).

The user then checks out, keeps browsing or abandons the cart, a multinomial logit with the
"keep browsing" utility fixed at 0:

    checkout = base_checkout_logit + segment_checkout_shift[segment]
               + value_logit_coef * log(value / 100)
               - shipping_pain * ps * fee / value                       (unless free shipping)
               + offer_sensitivity * ps * saving / (value + fee)
               + free_shipping_bonus * 1[free shipping]
               - declined_offer_penalty * offers_declined
    abandon  = base_abandon_logit + abandon_per_visit * visit
               + abandon_price_sensitivity * (ps - 1)

where ``ps`` is the user's latent price sensitivity (``World.users``, lognormal around 1),
``segment`` the user's CRM segment, ``value`` the merchandise value of the cart, ``saving``
the discount (``rate * value``) or the waived fee, and ``offers_declined`` how many incentives
the user saw in this cart without checking out. Two effects make incentives a trade-off rather
than a free lift: the shipping fee weighs on small carts (a 5.90 fee is a fifth of a 30 cart;
fees are the most cited reason for abandoning a cart), and users who were shown an incentive
and did not take it learn to wait for a better one (``declined_offer_penalty``). A user who
keeps browsing adds a popular item with probability ``add_item_prob``. After ``horizon``
visits without checkout the cart is abandoned, so every episode ends (checkout or
abandonment) within ``horizon`` steps. Every parameter is documented on ``CartConfig``.

Reward: at checkout the merchandise margin (sum of price - cost of the cart's items) minus the
cost of the incentive (the discount, or ``shipping_cost`` for free shipping); 0 otherwise.
The shipping fee a customer pays covers the carrier, so it is neither revenue nor cost here.

State features (``feature_names``): segment one-hot, device one-hot, ``log_value``
(log(1 + value) / 6), ``n_items`` / max_items, ``margin_rate`` (margin / value), ``visit`` /
horizon, ``offers_declined`` / horizon, ``last_offer`` (the previous visit's action / 3; 0 at
the first visit) and ``coupon_affinity``: the CRM's score of the user's past coupon use, a
noisy monotone proxy of the latent price sensitivity (in (0, 1); noise ``affinity_noise``).
Device does not change the dynamics; the segment shifts the checkout utility.

Behaviour policy ("abandoned-cart rules", tuned for conversion): a softmax over rule scores,
mixed with ``behavior_epsilon`` uniform exploration (so no action ever has probability 0).
Scores: nothing ``behavior_nothing_score``; both coupons ``behavior_coupon_per_visit`` per
earlier visit (a cart that keeps coming back is at risk), the large coupon also
``behavior_large_coupon_affinity`` per unit of coupon affinity (coupon-prone users get the
big one) minus 1; free shipping ``behavior_big_cart_bonus`` when the cart is worth more than
``behavior_big_cart_value``, minus 0.5. The rules ignore margins and the cost of teaching users
to wait, and hand incentives to carts that would have checked out anyway, so restrained,
targeted policies do clearly better (``heuristic_policy`` is one).

Landing logs (``generate_cart``): ``events_per_day / EVENTS_PER_CART`` carts open per day, at
times drawn from a diurnal profile; visits of a cart are ``VISIT_GAP_MEDIAN_MINUTES`` apart
in the median (lognormal with log-scale spread ``VISIT_GAP_SIGMA``, clipped to
``VISIT_GAP_RANGE_MINUTES``, so a cart may last days: ``max_cart_minutes``). Each visit logs a
``visit`` event and, a second later, the ``offer`` decision with its behaviour probability
and its context (cart value, margin and items, the user's coupon affinity); a checkout is
logged ``CHECKOUT_DELAY_SECONDS`` after its visit, an abandonment
``ABANDON_TIMEOUT_MINUTES`` after the last visit. Amounts are rounded to cents.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from offline_rl.data.schemas import CART
from offline_rl.simulator.base import PolicyFn, Simulation, sample_actions
from offline_rl.simulator.serving import SHOP, LoggingPolicy
from offline_rl.simulator.world import DEVICES, World

OFFERS: tuple[str, ...] = ("none", "coupon_5", "coupon_15", "free_shipping")
"""Offer names; an offer's index is its action id."""


@dataclass(frozen=True)
class CartConfig:
    """Dynamics and behaviour-policy parameters of the cart domain.

    Attributes:
        horizon: Maximum cart-page visits; a cart still open after that many is abandoned.
        max_items: Maximum items in a cart.
        extra_items_mean: Mean number of items beyond the first in a new cart (Poisson).
        add_item_prob: Probability that a user who keeps browsing adds an item.
        coupon_rates: Discount rates of the small and the large coupon (actions 1 and 2).
        shipping_fee: Flat shipping fee a customer pays unless shipping is free.
        shipping_cost: What the shop pays the carrier when it waives the fee (free shipping).
        base_checkout_logit: Checkout utility of a 100-currency cart, no offer, first visit.
        segment_checkout_shift: Checkout utility added per CRM segment (in segment order; one
            per segment of the world): segments of loyal customers buy more readily.
        value_logit_coef: Checkout utility per unit of log(cart value / 100).
        shipping_pain: Checkout utility lost per unit of (price sensitivity * fee / value).
        offer_sensitivity: Checkout utility per unit of (price sensitivity * relative saving).
        free_shipping_bonus: Extra checkout utility of "free" beyond the money saved.
        declined_offer_penalty: Checkout utility lost per incentive already seen in the cart.
        base_abandon_logit: Abandon utility at the first visit.
        abandon_per_visit: Abandon utility added per earlier visit.
        abandon_price_sensitivity: Abandon utility per unit of (price sensitivity - 1).
        affinity_noise: Noise (logit scale) of the observable coupon affinity score.
        behavior_epsilon: Uniform exploration share of the behaviour policy.
        behavior_nothing_score: Behaviour score of doing nothing.
        behavior_coupon_per_visit: Behaviour score of either coupon per earlier visit.
        behavior_large_coupon_affinity: Behaviour score of the large coupon per unit affinity.
        behavior_big_cart_value: Cart value above which the behaviour favours free shipping.
        behavior_big_cart_bonus: Behaviour score of free shipping on big carts.
    """

    horizon: int = 6
    max_items: int = 5
    extra_items_mean: float = 1.0
    add_item_prob: float = 0.25
    coupon_rates: tuple[float, float] = (0.05, 0.15)
    shipping_fee: float = 5.9
    shipping_cost: float = 5.9
    base_checkout_logit: float = -0.6
    segment_checkout_shift: tuple[float, ...] = (0.3, 0.1, -0.1, -0.3)
    value_logit_coef: float = -0.35
    shipping_pain: float = 4.0
    offer_sensitivity: float = 8.0
    free_shipping_bonus: float = 0.1
    declined_offer_penalty: float = 1.0
    base_abandon_logit: float = -1.4
    abandon_per_visit: float = 0.4
    abandon_price_sensitivity: float = 0.8
    affinity_noise: float = 0.5
    behavior_epsilon: float = 0.1
    behavior_nothing_score: float = 1.0
    behavior_coupon_per_visit: float = 0.8
    behavior_large_coupon_affinity: float = 2.0
    behavior_big_cart_value: float = 150.0
    behavior_big_cart_bonus: float = 1.5


def feature_names(n_segments: int) -> list[str]:
    """Names of the state features, in order."""
    return (
        [f"segment_{s}" for s in range(n_segments)]
        + [f"device_{d}" for d in DEVICES]
        + ["log_value", "n_items", "margin_rate", "visit_frac", "declined_frac", "last_offer",
           "coupon_affinity"]
    )


@dataclass
class CartBatch:
    """State of a batch of open carts (``items`` holds catalogue ids, -1 for empty slots)."""

    user: np.ndarray
    items: np.ndarray
    visit: np.ndarray
    declined: np.ndarray
    last_offer: np.ndarray
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class CartStep:
    """Outcome of one visit per cart (fields of rows already done are zero / False)."""

    checkout: np.ndarray
    abandon: np.ndarray
    revenue: np.ndarray
    margin: np.ndarray
    incentive_cost: np.ndarray
    reward: np.ndarray
    done: np.ndarray


class CartSimulator:
    """Vectorised dynamics of many carts at once."""

    name = "cart"

    def __init__(self, world: World, config: CartConfig | None = None) -> None:
        self.world = world
        self.config = config or CartConfig()
        self.n_actions = len(OFFERS)
        self.feature_names = feature_names(world.config.n_segments)
        self.observation_size = len(self.feature_names)
        cfg = self.config
        if len(cfg.segment_checkout_shift) != world.config.n_segments:
            raise ValueError(f"segment_checkout_shift has {len(cfg.segment_checkout_shift)} "
                             f"values for {world.config.n_segments} segments")
        self._segment_shift = np.asarray(cfg.segment_checkout_shift, dtype=float)
        noise = np.random.default_rng([world.config.seed, 1001]).normal(
            0.0, cfg.affinity_noise, world.users.n_users)
        self.coupon_affinity = _sigmoid(np.log(world.users.price_sensitivity) / 0.4 + noise)
        cat = world.catalogue
        self._price = np.r_[cat.price, 0.0]  # index -1 (empty slot) -> 0
        self._margin = np.r_[cat.price - cat.cost, 0.0]
        self._item_p = cat.popularity / cat.popularity.sum()

    # -- state ---------------------------------------------------------------------------
    def reset(self, n: int, rng: np.random.Generator) -> CartBatch:
        """``n`` new carts of users drawn uniformly from the population."""
        return self.start_carts(rng.integers(0, self.world.users.n_users, n), rng)

    def start_carts(self, users: np.ndarray, rng: np.random.Generator) -> CartBatch:
        """New carts for ``users``: 1 + Poisson(extra_items_mean) popular items (capped)."""
        cfg = self.config
        n = users.shape[0]
        k = np.minimum(1 + rng.poisson(cfg.extra_items_mean, n), cfg.max_items)
        drawn = rng.choice(self.world.catalogue.n_items, size=(n, cfg.max_items), p=self._item_p)
        items = np.where(np.arange(cfg.max_items)[None, :] < k[:, None], drawn, -1)
        return CartBatch(
            user=users.astype(np.int64), items=items.astype(np.int64),
            visit=np.zeros(n, dtype=np.int64), declined=np.zeros(n, dtype=np.int64),
            last_offer=np.zeros(n, dtype=np.int64), done=np.zeros(n, dtype=bool),
        )

    def cart_value(self, s: CartBatch) -> np.ndarray:
        return self._price[s.items].sum(axis=1)

    def cart_margin(self, s: CartBatch) -> np.ndarray:
        return self._margin[s.items].sum(axis=1)

    def n_items(self, s: CartBatch) -> np.ndarray:
        return (s.items >= 0).sum(axis=1)

    def observe(self, s: CartBatch) -> np.ndarray:
        """Feature matrix ``[batch, observation_size]`` (float32)."""
        cfg = self.config
        users = self.world.users
        value = self.cart_value(s)
        h = float(cfg.horizon)
        cols = [
            np.eye(self.world.config.n_segments)[users.segment[s.user]],
            np.eye(len(DEVICES))[users.device[s.user]],
            np.stack([
                np.log1p(value) / 6.0,
                self.n_items(s) / cfg.max_items,
                self.cart_margin(s) / np.maximum(value, 1e-9),
                s.visit / h,
                s.declined / h,
                s.last_offer / 3.0,
                self.coupon_affinity[s.user],
            ], axis=1),
        ]
        return np.concatenate(cols, axis=1).astype(np.float32)

    def action_mask(self, s: CartBatch) -> np.ndarray | None:
        """Every offer can always be shown."""
        return None

    def behavior_probs(self, s: CartBatch) -> np.ndarray:
        """Behaviour policy's action probabilities ``[batch, n_actions]``."""
        cfg = self.config
        n = s.user.shape[0]
        aff = self.coupon_affinity[s.user]
        big = self.cart_value(s) > cfg.behavior_big_cart_value
        score = np.zeros((n, self.n_actions))
        score[:, 0] = cfg.behavior_nothing_score
        score[:, 1] = cfg.behavior_coupon_per_visit * s.visit
        score[:, 2] = (cfg.behavior_coupon_per_visit * s.visit
                       + cfg.behavior_large_coupon_affinity * aff - 1.0)
        score[:, 3] = cfg.behavior_big_cart_bonus * big - 0.5
        w = np.exp(score - score.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        return (1.0 - cfg.behavior_epsilon) * w + cfg.behavior_epsilon / self.n_actions

    # -- dynamics ------------------------------------------------------------------------
    def incentive(self, s: CartBatch, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(saving to the customer, cost to the shop) of ``action`` on each cart."""
        cfg = self.config
        value = self.cart_value(s)
        rate = np.select([action == 1, action == 2], [cfg.coupon_rates[0], cfg.coupon_rates[1]],
                         0.0)
        free = action == 3
        saving = rate * value + free * cfg.shipping_fee
        cost = rate * value + free * cfg.shipping_cost
        return saving, cost

    def step(self, s: CartBatch, action: np.ndarray, rng: np.random.Generator) -> CartStep:
        """Advances every open cart in ``s`` by one visit, in place."""
        cfg = self.config
        n: int = s.user.shape[0]
        action = np.asarray(action, dtype=np.int64)
        live = ~s.done
        ps = self.world.users.price_sensitivity[s.user]
        value = np.maximum(self.cart_value(s), 1.0)
        free = action == 3
        saving, cost = self.incentive(s, action)
        fee = cfg.shipping_fee
        checkout_u = (
            cfg.base_checkout_logit
            + self._segment_shift[self.world.users.segment[s.user]]
            + cfg.value_logit_coef * np.log(value / 100.0)
            - cfg.shipping_pain * ps * fee / value * ~free
            + cfg.offer_sensitivity * ps * saving / (value + fee)
            + cfg.free_shipping_bonus * free
            - cfg.declined_offer_penalty * s.declined
        )
        abandon_u = (cfg.base_abandon_logit + cfg.abandon_per_visit * s.visit
                     + cfg.abandon_price_sensitivity * (ps - 1.0))
        top = np.maximum(np.maximum(checkout_u, abandon_u), 0.0)
        e_c, e_a, e_k = np.exp(checkout_u - top), np.exp(abandon_u - top), np.exp(-top)
        total = e_c + e_a + e_k
        u = rng.random(n)
        checkout = live & (u < e_c / total)
        last = s.visit + 1 >= cfg.horizon
        abandon = live & ~checkout & ((u < (e_c + e_a) / total) | last)
        margin = np.where(checkout, self.cart_margin(s), 0.0)
        incentive_cost = np.where(checkout, cost, 0.0)
        revenue = np.where(checkout, value - saving + fee, 0.0)
        reward = margin - incentive_cost
        # carts that go on: count declined offers, maybe add an item
        going = live & ~checkout & ~abandon
        s.declined += going & (action != 0)
        slot = self.n_items(s)
        add = going & (rng.random(n) < cfg.add_item_prob) & (slot < cfg.max_items)
        new_item = rng.choice(self.world.catalogue.n_items, size=n, p=self._item_p)
        rows = np.flatnonzero(add)
        s.items[rows, slot[rows]] = new_item[rows]
        s.last_offer = np.where(live, action, s.last_offer)
        s.visit = s.visit + live
        done = ~live | checkout | abandon
        s.done = done.copy()
        return CartStep(checkout=checkout, abandon=abandon, revenue=revenue, margin=margin,
                        incentive_cost=incentive_cost, reward=reward.astype(np.float64),
                        done=done)


def heuristic_policy(sim: CartSimulator) -> PolicyFn:
    """A hand-written targeted policy (a reference point that beats the behaviour policy).

    No incentive at the first visit (most carts check out without one, and a declined offer
    teaches the user to wait). From the second visit on: the large coupon for coupon-prone users
    (affinity > 0.8) with carts over 80, free shipping for carts over 40 of users with some
    coupon affinity (> 0.5) or from the fourth visit on, nothing otherwise.
    """
    idx = {name: i for i, name in enumerate(sim.feature_names)}
    horizon = sim.config.horizon

    def policy(obs: np.ndarray) -> np.ndarray:
        visit = np.rint(obs[:, idx["visit_frac"]] * horizon)
        affinity = obs[:, idx["coupon_affinity"]]
        value = np.expm1(obs[:, idx["log_value"]] * 6.0)
        later = visit >= 1
        action = np.where(later & ((affinity > 0.5) | (visit >= 3)) & (value > 40.0), 3, 0)
        action = np.where(later & (affinity > 0.8) & (value > 80.0), 2, action)
        return action.astype(np.int64)

    return policy


# -- landing logs ----------------------------------------------------------------------------
EVENTS_PER_CART = 65.0
"""Clickstream events per cart, to turn ``events_per_day`` into carts: at the default 40,000
events (about 5,000 sessions) a day, about 615 carts, i.e. roughly one session in eight puts
something in a cart."""

_CART_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 4, 4.5, 4, 3.5, 3.5, 4, 4.5, 5.5, 6.5, 7, 6,
     4, 2], dtype=float,
)

VISIT_GAP_MEDIAN_MINUTES = 45.0
"""Median time between two cart-page visits of the same cart (lognormal)."""

VISIT_GAP_SIGMA = 1.2
"""Log-scale spread of the time between visits."""

VISIT_GAP_RANGE_MINUTES: tuple[float, float] = (2.0, 1200.0)
"""Shortest and longest time between visits (the lognormal is clipped to it)."""

CHECKOUT_DELAY_SECONDS: tuple[int, int] = (30, 600)
"""A checkout is logged this long after the visit it ends (uniform, in seconds)."""

ABANDON_TIMEOUT_MINUTES = 60.0
"""An open cart counts as abandoned (and its ``abandon`` event is logged) this long after the
last visit."""


def max_cart_minutes(config: CartConfig) -> float:
    """Longest time from a cart's first visit to its last event (its checkout or abandon).

    ``horizon - 1`` gaps of at most ``VISIT_GAP_RANGE_MINUTES[1]``, then the later of the
    checkout delay and the abandonment timeout. The transitions query reads this many days of
    raw partitions after a cart's start day to see every cart whole.
    """
    return ((config.horizon - 1) * VISIT_GAP_RANGE_MINUTES[1]
            + max(ABANDON_TIMEOUT_MINUTES, CHECKOUT_DELAY_SECONDS[1] / 60.0))


def generate_cart(
    world: World, config: CartConfig, day: dt.date, rng: np.random.Generator,
    events_per_day: int, logging: LoggingPolicy = SHOP,
) -> dict[str, pl.DataFrame]:
    """Carts opened on ``day`` under the behaviour policy, as ``cart`` events."""
    sim = logging.wrap(CartSimulator(world, config))
    cfg = sim.config
    n = max(1, int(round(events_per_day / EVENTS_PER_CART)))
    users = rng.integers(0, world.users.n_users, n)
    hours = rng.choice(24, size=n, p=_CART_HOUR_WEIGHTS / _CART_HOUR_WEIGHTS.sum())
    midnight = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
    start = midnight + hours * 3_600_000_000 + rng.integers(0, 3_600_000_000, n)
    state = sim.start_carts(users, rng)
    rec: dict[str, list[np.ndarray]] = {k: [] for k in (
        "alive", "visit", "value", "cart_margin", "n_items", "action", "prob", "checkout",
        "abandon", "revenue", "margin", "cost")}
    for _ in range(cfg.horizon):
        alive = ~state.done
        if not alive.any():
            break
        probs = sim.behavior_probs(state)
        action = sample_actions(probs, rng)
        rec["alive"].append(alive)
        rec["visit"].append(state.visit.copy())
        rec["value"].append(sim.cart_value(state))
        rec["cart_margin"].append(sim.cart_margin(state))
        rec["n_items"].append(sim.n_items(state))
        rec["action"].append(action)
        rec["prob"].append(probs[np.arange(n), action])
        out = sim.step(state, action, rng)
        rec["checkout"].append(out.checkout)
        rec["abandon"].append(out.abandon)
        rec["revenue"].append(out.revenue)
        rec["margin"].append(out.margin)
        rec["cost"].append(out.incentive_cost)
    arr = {k: np.stack(v) for k, v in rec.items()}  # [steps, n]
    # minutes between cart-page visits (lognormal, clipped); the first visit opens the cart
    gaps = np.clip(rng.lognormal(np.log(VISIT_GAP_MEDIAN_MINUTES), VISIT_GAP_SIGMA,
                                 arr["alive"].shape), *VISIT_GAP_RANGE_MINUTES)
    gaps[0] = 0.0
    visit_ts = start[None, :] + (np.cumsum(gaps, axis=0) * 60e6).astype(np.int64)
    checkout_delay = rng.integers(CHECKOUT_DELAY_SECONDS[0] * 1_000_000,
                                  CHECKOUT_DELAY_SECONDS[1] * 1_000_000, arr["alive"].shape)
    keep = arr["alive"]
    cart_idx = np.broadcast_to(np.arange(n)[None, :], keep.shape)[keep]
    user = users[cart_idx]
    base = pl.DataFrame({
        "cart": pl.Series(cart_idx, dtype=pl.Int64),
        "user": pl.Series(user, dtype=pl.Int64),
        "user_segment": pl.Series(world.users.segment[user], dtype=pl.Int32),
        "device": np.asarray(DEVICES)[world.users.device[user]],
        "visit": pl.Series(arr["visit"][keep], dtype=pl.Int32),
        "cart_value": np.round(arr["value"][keep], 2),
        "cart_margin": np.round(arr["cart_margin"][keep], 2),
        "coupon_affinity": sim.coupon_affinity[user],
        "n_items": pl.Series(arr["n_items"][keep], dtype=pl.Int32),
        "action": pl.Series(arr["action"][keep], dtype=pl.Int32),
        "behavior_prob": arr["prob"][keep],
        "checkout": arr["checkout"][keep],
        "abandon": arr["abandon"][keep],
        "revenue": np.round(arr["revenue"][keep], 2),
        "margin": np.round(arr["margin"][keep], 2),
        "incentive_cost": np.round(arr["cost"][keep], 2),
        "visit_ts": visit_ts[keep],
        "checkout_ts": (visit_ts + checkout_delay)[keep],
    }).with_columns(
        cart_id=pl.format("{}-c{}", pl.lit(day.strftime("%Y%m%d")),
                          pl.col("cart").cast(pl.String).str.zfill(5)),
        user_id=pl.format("u{}", pl.col("user").cast(pl.String).str.zfill(5)),
    )
    prefix = pl.format("{}-v{}", pl.col("cart_id"), pl.col("visit"))
    null_f = pl.lit(None, dtype=pl.Float64)
    common = ["cart_id", "user_id", "user_segment", "device", "visit", "cart_value",
              "cart_margin", "n_items"]
    no_decision = dict(action=pl.lit(None, dtype=pl.Int32), offer=pl.lit(None, dtype=pl.String),
                       behavior_prob=null_f, coupon_affinity=null_f)
    visit = base.select(
        *common, event_id=pl.format("{}-visit", prefix), event_ts="visit_ts",
        event_type=pl.lit("visit"), **no_decision, ref_event_id=pl.lit(None, dtype=pl.String),
        revenue=null_f, margin=null_f, incentive_cost=null_f,
    )
    offer = base.select(
        *common, event_id=pl.format("{}-offer", prefix), event_ts=pl.col("visit_ts") + 1_000_000,
        event_type=pl.lit("offer"), action="action",
        offer=pl.col("action").replace_strict(list(range(len(OFFERS))), list(OFFERS),
                                              return_dtype=pl.String),
        behavior_prob="behavior_prob", coupon_affinity="coupon_affinity",
        ref_event_id=pl.lit(None, dtype=pl.String), revenue=null_f, margin=null_f,
        incentive_cost=null_f,
    )
    checkout = base.filter("checkout").select(
        *common, event_id=pl.format("{}-checkout", prefix), event_ts="checkout_ts",
        event_type=pl.lit("checkout"), **no_decision,
        ref_event_id=pl.format("{}-offer", prefix), revenue="revenue", margin="margin",
        incentive_cost="incentive_cost",
    )
    abandon = base.filter("abandon").select(
        *common, event_id=pl.format("{}-abandon", prefix),
        event_ts=pl.col("visit_ts") + int(ABANDON_TIMEOUT_MINUTES * 60e6),
        event_type=pl.lit("abandon"), **no_decision,
        ref_event_id=pl.format("{}-offer", prefix), revenue=null_f, margin=null_f,
        incentive_cost=null_f,
    )
    events = (
        pl.concat([visit, offer, checkout, abandon], how="diagonal")
        .with_columns(pl.col("event_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        .sort("event_ts", "event_id")
    )
    return {CART.name: CART.conform(events, logging.name)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


SIMULATION = Simulation(config=CartConfig(), make=CartSimulator, generate=generate_cart)
"""The cart domain's part of the simulated shop."""
