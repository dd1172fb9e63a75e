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
probabilities) and their parameters: ``offline_rl.simulator.recommendation``. The
transitions query: ``offline_rl.data.recommendation``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from offline_rl.data.recommendation import RecommendationSpec, build_recommendation_transitions
from offline_rl.domains.base import Domain
from offline_rl.simulator.truth import simulator_for

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
    make_simulator=lambda scenario: simulator_for("recommendation", scenario),
    lookback_days=1,
    lookahead_days=1,
    reward_doc=f"{SPEC.click_value} per click plus the margin of a purchase that follows it.",
    episode_doc="A browsing session; it ends when the user leaves (at most "
                f"{SPEC.horizon} pages).",
    gate_max_weight_share=1.0,  # measured: see Domain.gate_max_weight_share
)
