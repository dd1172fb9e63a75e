"""Search sort order: a sixth decision domain written as one file, outside the package.

Decision: at each query of a search session the shop picks how to sort the results
(relevance, lowest price first, bestsellers first). A session has at most three queries; after
each one the shopper leaves with a probability that is higher when nothing was clicked.

State features: ``price_sensitive`` (the shopper's segment, 0/1), ``mobile`` (0/1),
``query_frac`` (query index over the horizon) and ``clicked_before`` (0/1: a click earlier in
the session). Reward: the margin of a purchase that follows a click on the results.

Behaviour policy: relevance, with ``behavior_epsilon`` of the decisions sorted uniformly at
random; the logged ``behavior_prob`` is the probability of the order shown. Price-sensitive
shoppers buy more often from a lowest-price sort and brand-loyal ones from bestsellers, so a
policy that reads the segment beats the logging rule.

Loaded by the registry when ``$OFFLINE_RL_DOMAINS`` names this module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from offline_rl.data.schemas import TS, Column, SourceSchema, ValueRule, policy_version_column
from offline_rl.domains.base import Domain, next_state_columns, transition_columns
from offline_rl.simulator.base import Simulation, sample_actions
from offline_rl.simulator.serving import SHOP, LoggingPolicy

SORTS = ("relevance", "price_low", "bestseller")
FEATURES = ("price_sensitive", "mobile", "query_frac", "clicked_before")
EVENTS_PER_SESSION = 4.0

QUERIES = SourceSchema(
    name="search_queries",
    source="search",
    doc="One row per search query: the sort order shown and what followed.",
    key="event_id",
    time_column="event_ts",
    probability_column="behavior_prob",
    columns=(
        Column("event_id", pl.String(), "Unique query id.", nullable=False),
        Column("event_ts", TS, "Query time (UTC).", nullable=False),
        Column("session_id", pl.String(), "Search session id.", nullable=False),
        Column("query_index", pl.Int32(), "Query index within the session (0-based).",
               nullable=False),
        Column("price_sensitive", pl.Boolean(), "Segment of the shopper.", nullable=False),
        Column("device", pl.String(), "mobile | desktop.", nullable=False),
        Column("sort", pl.Int32(), "Sort order shown (the action).", nullable=False),
        Column("behavior_prob", pl.Float64(), "Probability the logging rule gave the sort.",
               nullable=False),
        Column("clicked", pl.Boolean(), "A result was clicked.", nullable=False),
        Column("margin", pl.Float64(), "Margin of the purchase that followed (0 if none).",
               nullable=False),
        Column("session_over", pl.Boolean(), "The shopper left after this query.",
               nullable=False),
        policy_version_column("Queries"),
    ),
    rules={"sort": ValueRule(allowed=tuple(range(len(SORTS)))),
           "device": ValueRule(allowed=("mobile", "desktop")),
           "query_index": ValueRule(minimum=0), "margin": ValueRule(minimum=0)},
)


# -- the simulated shop ----------------------------------------------------------------------
@dataclass(frozen=True)
class SearchConfig:
    horizon: int = 3
    behavior_epsilon: float = 0.3
    click_logit: tuple[tuple[float, ...], ...] = ((-0.8, 0.4, -1.2), (-0.4, -1.4, 0.3))
    """Click logit by segment (price-sensitive first) and sort order."""
    margin: tuple[float, ...] = (6.0, 4.0, 7.0)
    buy_prob: float = 0.4
    exit_prob: tuple[float, float] = (0.25, 0.55)
    """Leaving after a query with and without a click."""
    mobile_share: float = 0.6


@dataclass
class SearchBatch:
    price_sensitive: np.ndarray
    mobile: np.ndarray
    t: np.ndarray
    clicked_before: np.ndarray
    done: np.ndarray


@dataclass
class SearchStep:
    reward: np.ndarray
    done: np.ndarray
    clicked: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


class SearchSimulator:
    """Search sessions, vectorised; three uniform draws per row and step whatever the sort."""

    name = "search"
    n_actions = len(SORTS)
    feature_names = list(FEATURES)
    observation_size = len(FEATURES)

    def __init__(self, world: Any, config: SearchConfig) -> None:
        self.config = config

    def reset(self, n: int, rng: np.random.Generator) -> SearchBatch:
        u = rng.random((n, 2))
        return SearchBatch(price_sensitive=u[:, 0] < 0.5,
                           mobile=u[:, 1] < self.config.mobile_share,
                           t=np.zeros(n, np.int64), clicked_before=np.zeros(n, bool),
                           done=np.zeros(n, bool))

    def observe(self, s: SearchBatch) -> np.ndarray:
        return np.stack([s.price_sensitive, s.mobile, s.t / self.config.horizon,
                         s.clicked_before], axis=1).astype(np.float32)

    def behavior_probs(self, s: SearchBatch) -> np.ndarray:
        eps = self.config.behavior_epsilon
        probs = np.full((s.t.shape[0], self.n_actions), eps / self.n_actions)
        probs[:, 0] += 1.0 - eps
        return probs

    def action_mask(self, s: SearchBatch) -> None:
        return None

    def step(self, s: SearchBatch, action: np.ndarray, rng: np.random.Generator) -> SearchStep:
        cfg = self.config
        u = rng.random((action.shape[0], 3))
        logit = np.asarray(cfg.click_logit)[(~s.price_sensitive).astype(int), action]
        p_click = 1.0 / (1.0 + np.exp(-(logit + 0.5 * s.clicked_before)))
        clicked = (u[:, 0] < p_click) & ~s.done
        bought = clicked & (u[:, 1] < cfg.buy_prob)
        reward = np.where(bought, np.asarray(cfg.margin)[action], 0.0)
        leave = u[:, 2] < np.where(clicked, cfg.exit_prob[0], cfg.exit_prob[1])
        s.t = s.t + 1
        s.clicked_before = s.clicked_before | clicked
        s.done = s.done | leave | (s.t >= cfg.horizon)
        return SearchStep(reward=reward, done=s.done.copy(), clicked=clicked)


def generate_search(world: Any, config: SearchConfig, day: dt.date, rng: np.random.Generator,
                    events_per_day: int, logging: LoggingPolicy = SHOP
                    ) -> dict[str, pl.DataFrame]:
    """The search sessions of ``day``, one row per query."""
    sim = logging.wrap(SearchSimulator(world, config))
    n = max(1, int(round(events_per_day / EVENTS_PER_SESSION)))
    state = sim.reset(n, rng)
    start = rng.integers(0, 86_400_000_000, n)
    rows: list[pl.DataFrame] = []
    for t in range(config.horizon):
        alive = ~state.done
        if not alive.any():
            break
        probs = sim.behavior_probs(state)
        action = sample_actions(probs, rng)
        price_sensitive, mobile = state.price_sensitive.copy(), state.mobile.copy()
        out = sim.step(state, action, rng)
        idx = np.flatnonzero(alive)
        rows.append(pl.DataFrame({
            "session": idx, "query_index": np.full(idx.shape[0], t, np.int32),
            "event_ts": start[idx] + t * 40_000_000,
            "price_sensitive": price_sensitive[idx],
            "device": np.where(mobile[idx], "mobile", "desktop"),
            "sort": action[idx].astype(np.int32), "behavior_prob": probs[idx, action[idx]],
            "clicked": out.clicked[idx], "margin": out.reward[idx],
            "session_over": out.done[idx],
        }))
    midnight = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
    frame = pl.concat(rows).with_columns(
        (pl.col("event_ts") + midnight).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        session_id=pl.format("s{}-{}", pl.lit(f"{day:%Y%m%d}"),
                             pl.col("session").cast(pl.String).str.zfill(6)),
    ).with_columns(event_id=pl.format("{}-q{}", "session_id", "query_index")
                   ).sort("event_ts", "event_id")
    return {QUERIES.name: QUERIES.conform(frame, logging.name)}


SIMULATION = Simulation(config=SearchConfig(), make=SearchSimulator, generate=generate_search)


# -- the transitions query -------------------------------------------------------------------
def build_search_transitions(raw: Mapping[str, pl.LazyFrame], *, sessions_from: dt.date,
                             sessions_to: dt.date, data_end: dt.datetime) -> pl.LazyFrame:
    """One row per query of the sessions starting in ``[sessions_from, sessions_to]``."""
    horizon = SearchConfig().horizon
    feature_cols = [f"f_{n}" for n in FEATURES]
    queries = (
        raw[QUERIES.name].filter(pl.col("event_ts") < pl.lit(data_end))
        .with_columns(start_ts=pl.col("event_ts").min().over("session_id"))
        .filter(pl.col("start_ts").dt.date().is_between(sessions_from, sessions_to))
        .sort("session_id", "query_index")
    )
    last = pl.col("session_id") != pl.col("session_id").shift(-1)
    return (
        queries.with_columns(
            _last=last.fill_null(True),
            action=pl.col("sort"),
            reward=pl.col("margin"),
            f_price_sensitive=pl.col("price_sensitive").cast(pl.Float32),
            f_mobile=(pl.col("device") == "mobile").cast(pl.Float32),
            f_query_frac=(pl.col("query_index") / horizon).cast(pl.Float32),
            f_clicked_before=((pl.col("clicked").cast(pl.Int32).cum_sum().over("session_id")
                               - pl.col("clicked").cast(pl.Int32)) > 0).cast(pl.Float32),
        )
        .with_columns(
            *next_state_columns(feature_cols),
            terminal=pl.col("_last") & pl.col("session_over"),
            timeout=pl.col("_last") & ~pl.col("session_over"),
        )
        .select(*transition_columns(
            feature_cols, partition_date=pl.col("start_ts").dt.date(), episode_id="session_id",
            step="query_index", decision_id="event_id", decision_ts="event_ts"))
    )


DOMAIN = Domain(
    name="search",
    title="How to sort the results of each query of a search session.",
    sources=(QUERIES.name,),
    feature_names=FEATURES,
    action_names=SORTS,
    build_transitions=build_search_transitions,
    simulation=SIMULATION,
    landing=(QUERIES,),
    reward_doc="The margin of a purchase that follows a click on the results.",
    episode_doc="A search session of at most three queries; it ends when the shopper leaves.",
)
