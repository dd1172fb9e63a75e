"""Product recommendation: which category to feature in the home-page slot at each page view.

The features and the transitions query live in ``offline_rl.data.recommendation``; the
dynamics and the behaviour policy ("popularity with exploration") in
``offline_rl.simulator.recommendation``.
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
)
