"""Product recommendation: which category to feature in the home-page slot at each page view.

Decision: at every page view of a browsing session the shop picks one of six product
categories for the recommendation slot; the item shown is drawn from that category by
popularity.

State features (rebuilt from the clickstream, exactly as the simulator sees them):
``segment_*`` the user's CRM segment (one-hot), ``device_*`` mobile / desktop (one-hot),
``page_frac`` the page index over the 8-page horizon, and per category ``shown_*`` and
``clicked_*``: how often it was shown and clicked earlier in the session (over 8).

Actions: the category index (electronics, home, fashion, beauty, sports, toys).

Reward: 0.5 per click (engagement value) plus the margin (price minus cost) of a purchase that
follows the click.

Episode: one session, keyed by its start date; it ends when the user leaves (after each page
with probability ``base_exit + no_click_exit * (1 - click)``, at the latest after 8 pages).
A session whose last event is within 30 minutes of the end of the loaded data may still go on:
its last decision is a ``timeout``, not a terminal, until the next day is loaded.

Behaviour policy ("popularity with exploration"): categories weighted by their shop-wide
click-through rate, sharpened by a temperature, damped for categories already shown in the
session, mixed with 20% uniform exploration; the logged ``behavior_prob`` is the probability
of the category shown. Dynamics (click and buy logits, fatigue, price sensitivity, exit
probabilities) and their parameters: ``offline_rl.simulator.recommendation``.

The transitions query (``build_recommendation_transitions``, one lazy polars query) has one row
per recommendation impression, ordered within its session; the reward of an impression is
``click_value * clicked`` plus the margin of purchases following it. A session is built whole
from the raw partitions of its start day and the next one; where those hold many rows, a
share of the sessions at a time (``Domain.share_key``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from offline_rl.data.schemas import CLICKSTREAM
from offline_rl.domains.base import Domain, next_state_columns
from offline_rl.simulator.recommendation import SIMULATION
from offline_rl.simulator.world import CATEGORIES, DEVICES


@dataclass(frozen=True)
class RecommendationSpec:
    """Feature and reward definition of the recommendation domain.

    Attributes:
        n_segments: Number of CRM segments (one-hot width).
        categories: Category names; the action is the category's index.
        devices: Device names (one-hot).
        horizon: Page horizon used to scale page index and counts.
        click_value: Reward credited per click, in currency units.
        session_gap_minutes: A session with no event for this long before the end of the
            loaded data is over; otherwise its last decision is a timeout, not a terminal.
    """

    n_segments: int = 4
    categories: tuple[str, ...] = CATEGORIES
    devices: tuple[str, ...] = DEVICES
    horizon: int = 8
    click_value: float = 0.5
    session_gap_minutes: float = 30.0

    @property
    def n_actions(self) -> int:
        return len(self.categories)

    @property
    def feature_names(self) -> list[str]:
        return (
            [f"segment_{s}" for s in range(self.n_segments)]
            + [f"device_{d}" for d in self.devices]
            + ["page_frac"]
            + [f"shown_{c}" for c in self.categories]
            + [f"clicked_{c}" for c in self.categories]
        )

    @property
    def feature_columns(self) -> list[str]:
        return [f"f_{n}" for n in self.feature_names]


def _within_session(expr: pl.Expr) -> pl.Expr:
    """Exclusive running sum of ``expr`` within the session, on rows sorted by session.

    A global cumulative sum minus its value at the session's first row: no per-session
    window, so the cost is one pass per feature over the sorted frame.
    """
    before = expr.cum_sum() - expr
    return before - pl.when(pl.col("_first")).then(before).forward_fill()


def _feature_exprs(spec: RecommendationSpec) -> list[pl.Expr]:
    h = float(spec.horizon)
    exprs = [
        (pl.col("user_segment") == s).cast(pl.Float32).alias(f"f_segment_{s}")
        for s in range(spec.n_segments)
    ]
    exprs += [(pl.col("device") == d).cast(pl.Float32).alias(f"f_device_{d}") for d in spec.devices]
    exprs.append((pl.col("page") / h).cast(pl.Float32).alias("f_page_frac"))
    for c, name in enumerate(spec.categories):
        this = (pl.col("category_id") == c).cast(pl.Int32)
        hit = this * pl.col("clicked").cast(pl.Int32)
        exprs.append((_within_session(this) / h).cast(pl.Float32).alias(f"f_shown_{name}"))
        exprs.append((_within_session(hit) / h).cast(pl.Float32).alias(f"f_clicked_{name}"))
    return exprs


def build_recommendation_transitions(
    events: pl.LazyFrame,
    spec: RecommendationSpec,
    *,
    sessions_from: dt.date,
    sessions_to: dt.date,
    data_end: dt.datetime,
) -> pl.LazyFrame:
    """Transitions of the sessions that start in ``[sessions_from, sessions_to]``.

    Args:
        events: Raw clickstream rows (``raw_clickstream``) covering those sessions.
        spec: Features and reward.
        sessions_from: First session start date to keep.
        sessions_to: Last session start date to keep.
        data_end: End of the loaded data (exclusive); decides terminal vs timeout.
    """
    ev = events.select(
        "event_id", "event_ts", "event_type", "session_id", "user_id", "user_segment", "device",
        "page", "item_id", "category_id", "behavior_prob", "policy_version", "ref_event_id",
        "margin",
    )
    # clicks and purchases point at the impression they follow: one pass for both
    outcomes = (
        ev.filter(pl.col("ref_event_id").is_not_null())
        .group_by("ref_event_id")
        .agg(clicked=(pl.col("event_type") == "click").any(),
             purchase_margin=pl.col("margin").filter(pl.col("event_type") == "purchase").sum())
    )
    sessions = ev.group_by("session_id").agg(
        first_ts=pl.col("event_ts").min(), last_ts=pl.col("event_ts").max()
    )
    if data_end.tzinfo is None:
        raise ValueError("data_end must be timezone-aware (UTC)")
    cutoff = data_end - dt.timedelta(minutes=spec.session_gap_minutes)
    feature_cols = spec.feature_columns
    # rows are sorted by session: session boundaries are where the id changes
    first = pl.col("session_id") != pl.col("session_id").shift(1)
    last = pl.col("session_id") != pl.col("session_id").shift(-1)
    row = pl.int_range(pl.len(), dtype=pl.Int32)
    return (
        ev.filter(pl.col("event_type") == "impression")
        .join(sessions, on="session_id", how="left")
        .filter(pl.col("first_ts").dt.date().is_between(sessions_from, sessions_to))
        .join(outcomes, left_on="event_id", right_on="ref_event_id", how="left")
        .sort("session_id", "page", "event_ts", "event_id")  # event_id: no ties, any input order
        .with_columns(
            clicked=pl.col("clicked").fill_null(False),
            purchase_margin=pl.col("purchase_margin").fill_null(0.0),
            _first=first.fill_null(True),
            _last=last.fill_null(True),
        )
        .with_columns(step=row - pl.when(pl.col("_first")).then(row).forward_fill())
        .with_columns(
            *_feature_exprs(spec),
            (spec.click_value * pl.col("clicked").cast(pl.Float64)
             + pl.col("purchase_margin")).alias("reward"),
        )
        .with_columns(
            *next_state_columns(feature_cols),
            (pl.col("_last") & (pl.col("last_ts") < pl.lit(cutoff))).alias("terminal"),
            (pl.col("_last") & (pl.col("last_ts") >= pl.lit(cutoff))).alias("timeout"),
        )
        .select(
            pl.col("first_ts").dt.date().alias("partition_date"),
            pl.col("session_id").alias("episode_id"),
            "step",
            pl.col("event_id").alias("decision_id"),
            pl.col("event_ts").alias("decision_ts"),
            "user_id",
            pl.col("category_id").cast(pl.Int32).alias("action"),
            "item_id", "behavior_prob", "policy_version", "reward", "clicked",
            "purchase_margin",
            "terminal", "timeout",
            *feature_cols,
            *[f"next_{c}" for c in feature_cols],
        )
    )


SPEC = RecommendationSpec()


def _build(raw: Mapping[str, pl.LazyFrame], *, sessions_from: dt.date, sessions_to: dt.date,
           data_end: dt.datetime) -> pl.LazyFrame:
    return build_recommendation_transitions(
        raw["clickstream"], SPEC, sessions_from=sessions_from, sessions_to=sessions_to,
        data_end=data_end)


DOMAIN = Domain(
    name="recommendation",
    title="Which product category to feature in the recommendation slot of each page view.",
    sources=("clickstream",),
    feature_names=tuple(SPEC.feature_names),
    action_names=tuple(SPEC.categories),
    build_transitions=_build,
    simulation=SIMULATION,
    landing=(CLICKSTREAM,),
    order=1,
    lookback_days=1,
    lookahead_days=1,
    progress_feature="page_frac",
    reward_doc=f"{SPEC.click_value} per click plus the margin of a purchase that follows it.",
    episode_doc="A browsing session; it ends when the user leaves (at most "
                f"{SPEC.horizon} pages).",
    gate_max_weight_share=1.0,  # measured: see Domain.gate_max_weight_share
    share_key="session_id",  # a session's impressions, clicks and purchases carry its id
)
