"""Product recommendation: which category to feature in the home-page slot.

One episode is one browsing session. At each page view the shop picks a category for the
recommendation slot (the action); the simulator shows that category's item drawn by
within-category popularity. The user clicks with probability

    p_click = sigmoid(base_click_logit + taste[u, c] + desktop_bonus * desktop
                      - fatigue * shown[c])

and, having clicked, buys with probability

    p_buy = sigmoid(base_buy_logit - price_sensitivity[u] * log(price / reference_price[c])
                    + repeat_interest_bonus * 1[clicked[c] > 0]).

Reward = click_value * click + (price - cost) * buy (margin in currency units). The session
ends after each page with probability ``base_exit + no_click_exit * (1 - click)``, and at the
latest after ``horizon`` pages, so episodes have variable length and always end in a terminal
state.

The state the policy sees (and that ``offline_rl.domains.recommendation`` rebuilds from the logs)
is: the user's segment (one-hot), device (one-hot), the page index / horizon, and per category
how often it was shown and clicked so far in the session (divided by horizon). A user's latent
taste is not observed, but segment and in-session clicks reveal much of it, so a personalised
policy is clearly better than the logging policy.

Behaviour policy ("popularity with exploration", what many shops run): categories are
weighted by their shop-wide click-through rate, sharpened by a temperature, damped for
categories already shown in the session, and mixed with epsilon-uniform exploration. Every
logged decision records the probability the policy gave to the shown category.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from offline_rl.data.schemas import CLICKSTREAM
from offline_rl.simulator.base import PolicyFn, Simulation, sample_actions
from offline_rl.simulator.serving import SHOP, LoggingPolicy
from offline_rl.simulator.world import CATEGORIES, DEVICES, World


@dataclass(frozen=True)
class RecommendationConfig:
    """Dynamics and behaviour-policy parameters of the recommendation domain.

    Attributes:
        horizon: Maximum pages per session.
        base_click_logit: Click logit of an average user for an average category.
        fatigue: Click-logit penalty per earlier showing of the same category in the session.
        desktop_click_bonus: Click-logit bonus on desktop.
        click_value: Reward for a click (engagement value, currency units).
        base_buy_logit: Buy logit after a click at the reference price.
        repeat_interest_bonus: Buy-logit bonus when the user already clicked the category.
        base_exit: Probability of leaving after any page.
        no_click_exit: Extra probability of leaving after a page without a click.
        behavior_epsilon: Exploration share of the behaviour policy (uniform over categories).
        behavior_temperature: Temperature of the popularity softmax (lower is greedier).
        behavior_repeat_damping: Behaviour weight multiplier per earlier showing of a category.
    """

    horizon: int = 8
    base_click_logit: float = -1.6
    fatigue: float = 0.45
    desktop_click_bonus: float = 0.2
    click_value: float = 0.5
    base_buy_logit: float = -0.8
    repeat_interest_bonus: float = 0.4
    base_exit: float = 0.15
    no_click_exit: float = 0.15
    behavior_epsilon: float = 0.2
    behavior_temperature: float = 0.5
    behavior_repeat_damping: float = 0.5


def feature_names(world: World) -> list[str]:
    """Names of the state features, in order (the exported policies' input schema)."""
    n_seg = world.config.n_segments
    return (
        [f"segment_{s}" for s in range(n_seg)]
        + [f"device_{d}" for d in DEVICES]
        + ["page_frac"]
        + [f"shown_{c}" for c in CATEGORIES]
        + [f"clicked_{c}" for c in CATEGORIES]
    )


@dataclass
class SessionBatch:
    """State of a batch of concurrent sessions."""

    user: np.ndarray
    page: np.ndarray
    shown: np.ndarray
    clicked: np.ndarray
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class StepOutcome:
    item: np.ndarray
    click: np.ndarray
    buy: np.ndarray
    price: np.ndarray
    margin: np.ndarray
    reward: np.ndarray
    done: np.ndarray


class RecommendationSimulator:
    """Vectorised dynamics of many sessions at once (numpy over the batch, no per-event loop)."""

    def __init__(self, world: World, config: RecommendationConfig | None = None) -> None:
        self.world = world
        self.config = config or RecommendationConfig()
        self.n_actions = len(CATEGORIES)
        self.feature_names = feature_names(world)
        self.observation_size = len(self.feature_names)
        users = world.users
        ctr = 1.0 / (1.0 + np.exp(-(self.config.base_click_logit + users.taste)))
        self.category_ctr = ctr.mean(axis=0)
        logits = np.log(self.category_ctr) / self.config.behavior_temperature
        self._behavior_logits = logits - logits.max()

    name = "recommendation"

    def reset(self, n: int, rng: np.random.Generator) -> SessionBatch:
        """``n`` new sessions of users drawn uniformly from the population."""
        return self.start_sessions(rng.integers(0, self.world.users.n_users, n))

    def action_mask(self, s: SessionBatch) -> np.ndarray | None:
        """Every category can always be shown."""
        return None

    def start_sessions(self, users: np.ndarray) -> SessionBatch:
        n = users.shape[0]
        return SessionBatch(
            user=users.astype(np.int64),
            page=np.zeros(n, dtype=np.int64),
            shown=np.zeros((n, self.n_actions), dtype=np.int64),
            clicked=np.zeros((n, self.n_actions), dtype=np.int64),
            done=np.zeros(n, dtype=bool),
        )

    def observe(self, s: SessionBatch) -> np.ndarray:
        """Feature matrix ``[batch, observation_size]`` (float32) of the current states."""
        users = self.world.users
        n_seg = self.world.config.n_segments
        h = float(self.config.horizon)
        seg = np.eye(n_seg, dtype=np.float32)[users.segment[s.user]]
        dev = np.eye(len(DEVICES), dtype=np.float32)[users.device[s.user]]
        page = (s.page / h).astype(np.float32)[:, None]
        return np.concatenate(
            [seg, dev, page, (s.shown / h).astype(np.float32), (s.clicked / h).astype(np.float32)],
            axis=1,
        )

    def behavior_probs(self, s: SessionBatch) -> np.ndarray:
        """Behaviour policy's action probabilities ``[batch, n_actions]``."""
        cfg = self.config
        w = np.exp(self._behavior_logits)[None, :] * cfg.behavior_repeat_damping ** s.shown
        w = w / w.sum(axis=1, keepdims=True)
        return (1.0 - cfg.behavior_epsilon) * w + cfg.behavior_epsilon / self.n_actions

    def step(self, s: SessionBatch, action: np.ndarray, rng: np.random.Generator) -> StepOutcome:
        """Advances every live session in ``s`` by one page, in place."""
        cfg = self.config
        cat = self.world.catalogue
        users = self.world.users
        n: int = s.user.shape[0]
        rows = np.arange(n)
        action = action.astype(np.int64)
        # item shown: within-category popularity (inverse-CDF on cumulative popularity)
        per = self.world.config.items_per_category
        cum = np.cumsum(cat.popularity.reshape(self.n_actions, per), axis=1)
        pick = (rng.random(n)[:, None] > cum[action]).sum(axis=1).clip(0, per - 1)
        item = action * per + pick
        logit = (
            cfg.base_click_logit
            + users.taste[s.user, action]
            + cfg.desktop_click_bonus * users.device[s.user]
            - cfg.fatigue * s.shown[rows, action]
        )
        click = rng.random(n) < _sigmoid(logit)
        buy_logit = (
            cfg.base_buy_logit
            - users.price_sensitivity[s.user]
            * np.log(cat.price[item] / cat.reference_price[action])
            + cfg.repeat_interest_bonus * (s.clicked[rows, action] > 0)
        )
        buy = click & (rng.random(n) < _sigmoid(buy_logit))
        price = cat.price[item]
        margin = price - cat.cost[item]
        reward = cfg.click_value * click + margin * buy
        exit_p = cfg.base_exit + cfg.no_click_exit * (~click)
        s.shown[rows, action] += 1
        s.clicked[rows, action] += click
        s.page += 1
        done = (rng.random(n) < exit_p) | (s.page >= cfg.horizon)
        s.done = s.done | done
        return StepOutcome(
            item=item, click=click, buy=buy, price=price, margin=margin,
            reward=reward.astype(np.float64), done=done,
        )


@dataclass(frozen=True)
class SessionLog:
    """Per-decision arrays of simulated sessions (one row per page with a decision)."""

    session: np.ndarray
    user: np.ndarray
    page: np.ndarray
    observation: np.ndarray
    action: np.ndarray
    behavior_prob: np.ndarray
    item: np.ndarray
    click: np.ndarray
    buy: np.ndarray
    price: np.ndarray
    reward: np.ndarray
    terminal: np.ndarray


def simulate_sessions(
    sim: RecommendationSimulator,
    users: np.ndarray,
    rng: np.random.Generator,
    policy: PolicyFn | None = None,
) -> SessionLog:
    """Runs one session per entry of ``users`` under ``policy`` (the behaviour policy if None).

    The loop is over pages (at most ``horizon``), each step vectorised over live sessions.
    """
    state = sim.start_sessions(users)
    n = users.shape[0]
    chunks: list[dict[str, np.ndarray]] = []
    live = np.arange(n)
    while live.size:
        sub = SessionBatch(
            user=state.user[live], page=state.page[live], shown=state.shown[live],
            clicked=state.clicked[live], done=state.done[live],
        )
        obs = sim.observe(sub)
        probs = sim.behavior_probs(sub)
        if policy is None:
            action = sample_actions(probs, rng)
        else:
            action = np.asarray(policy(obs)).reshape(-1).astype(np.int64)
            if action.shape[0] != live.size or action.min() < 0 or action.max() >= sim.n_actions:
                raise ValueError("policy returned actions of the wrong shape or out of range")
        out = sim.step(sub, action, rng)
        chunks.append(
            dict(
                session=live, user=sub.user, page=sub.page - 1, observation=obs, action=action,
                behavior_prob=probs[np.arange(live.size), action], item=out.item,
                click=out.click, buy=out.buy, price=out.price, reward=out.reward,
                terminal=out.done,
            )
        )
        state.page[live], state.shown[live], state.clicked[live] = sub.page, sub.shown, sub.clicked
        state.done[live] = sub.done
        live = live[~out.done]
    merged = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    order = np.lexsort((merged["page"], merged["session"]))
    return SessionLog(**{k: v[order] for k, v in merged.items()})


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# -- landing logs ----------------------------------------------------------------------------
EVENTS_PER_SESSION = 8.0
"""Rough clickstream events per session, to turn ``events_per_day`` into sessions."""

_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 4, 4.5, 4, 3.5, 3.5, 4, 4.5, 5.5, 6.5, 7, 6,
     4, 2], dtype=float,
)

def session_start_times(day: dt.date, n: int, rng: np.random.Generator) -> np.ndarray:
    """Session start times (epoch microseconds, UTC) with a diurnal profile."""
    hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    seconds = hours * 3600 + rng.random(n) * 3600
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()
    return ((midnight + seconds) * 1e6).astype(np.int64)


def generate_clickstream(
    world: World, config: RecommendationConfig, day: dt.date, rng: np.random.Generator,
    events_per_day: int, logging: LoggingPolicy = SHOP,
) -> dict[str, pl.DataFrame]:
    """Sessions of one day under the recommendation behaviour policy, as clickstream events."""
    sim = logging.wrap(RecommendationSimulator(world, config))
    n_sessions = max(1, int(round(events_per_day / EVENTS_PER_SESSION)))
    users = rng.integers(0, world.users.n_users, n_sessions)
    starts = session_start_times(day, n_sessions, rng)
    log = simulate_sessions(sim, users, rng)
    return {CLICKSTREAM.name: clickstream_events(world, log, day, starts, rng, logging.name)}


def clickstream_events(
    world: World, log: SessionLog, day: dt.date, starts: np.ndarray, rng: np.random.Generator,
    policy_version: str | None = None,
) -> pl.DataFrame:
    """Turns simulated sessions into clickstream rows (page view, impression, click, purchase).

    ``starts`` holds each session's start time in epoch microseconds; impressions name
    ``policy_version`` as the policy that chose them.
    """
    n = log.action.shape[0]
    gaps = rng.integers(15_000_000, 120_000_000, n)  # 15 s to 2 min between pages
    first = np.r_[True, log.session[1:] != log.session[:-1]]
    offset = np.cumsum(gaps) - np.maximum.accumulate(np.where(first, np.cumsum(gaps), 0))
    page_ts = starts[log.session] + offset
    click_delay = rng.integers(2_000_000, 20_000_000, n)
    buy_delay = rng.integers(20_000_000, 90_000_000, n)
    seg = world.users.segment[log.user]
    dev = np.asarray(DEVICES)[world.users.device[log.user]]
    cat = world.catalogue.category_id[log.item]
    base = pl.DataFrame(
        {
            "session_id": pl.Series(log.session, dtype=pl.Int64),
            "user": pl.Series(log.user, dtype=pl.Int64),
            "user_segment": pl.Series(seg, dtype=pl.Int32),
            "device": dev,
            "page": pl.Series(log.page, dtype=pl.Int32),
            "item_id": pl.Series(log.item, dtype=pl.Int64),
            "category_id": pl.Series(cat, dtype=pl.Int32),
            "behavior_prob": log.behavior_prob.astype(np.float64),
            "click": log.click,
            "buy": log.buy,
            "price": log.price.astype(np.float64),
            "margin": (log.price - world.catalogue.cost[log.item]).astype(np.float64),
            "page_ts": page_ts,
            "click_ts": page_ts + click_delay,
            "buy_ts": page_ts + click_delay + buy_delay,
        }
    ).with_columns(
        session_id=pl.format("{}-{}", pl.lit(day.strftime("%Y%m%d")),
                             pl.col("session_id").cast(pl.String).str.zfill(6)),
        user_id=pl.format("u{}", pl.col("user").cast(pl.String).str.zfill(5)),
    )
    prefix = pl.format("{}-p{}", pl.col("session_id"), pl.col("page"))
    null_f = pl.lit(None, dtype=pl.Float64)
    common = ["session_id", "user_id", "user_segment", "device", "page"]
    page_view = base.select(
        *common, event_id=pl.format("{}-view", prefix), event_ts=pl.col("page_ts"),
        event_type=pl.lit("page_view"), slot=pl.lit(None, dtype=pl.Int32),
        item_id=pl.lit(None, dtype=pl.Int64), category_id=pl.lit(None, dtype=pl.Int32),
        behavior_prob=null_f, ref_event_id=pl.lit(None, dtype=pl.String), price=null_f,
        margin=null_f,
    )
    impression = base.select(
        *common, event_id=pl.format("{}-imp", prefix), event_ts=pl.col("page_ts") + 500_000,
        event_type=pl.lit("impression"), slot=pl.lit(0, dtype=pl.Int32),
        item_id="item_id", category_id="category_id", behavior_prob="behavior_prob",
        ref_event_id=pl.lit(None, dtype=pl.String), price=null_f, margin=null_f,
    )
    click = base.filter("click").select(
        *common, event_id=pl.format("{}-click", prefix), event_ts=pl.col("click_ts"),
        event_type=pl.lit("click"), slot=pl.lit(0, dtype=pl.Int32),
        item_id="item_id", category_id="category_id", behavior_prob=null_f,
        ref_event_id=pl.format("{}-imp", prefix), price=null_f, margin=null_f,
    )
    purchase = base.filter("buy").select(
        *common, event_id=pl.format("{}-buy", prefix), event_ts=pl.col("buy_ts"),
        event_type=pl.lit("purchase"), slot=pl.lit(0, dtype=pl.Int32),
        item_id="item_id", category_id="category_id", behavior_prob=null_f,
        ref_event_id=pl.format("{}-imp", prefix), price="price", margin="margin",
    )
    events = (
        pl.concat([page_view, impression, click, purchase])
        .with_columns(pl.col("event_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        .sort("event_ts", "event_id")
    )
    return CLICKSTREAM.conform(events, policy_version)


SIMULATION = Simulation(config=RecommendationConfig(), make=RecommendationSimulator,
                        generate=generate_clickstream)
"""The recommendation domain's part of the simulated shop."""
