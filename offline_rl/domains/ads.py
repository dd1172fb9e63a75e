"""Ad bidding: the multiplier on each search-ad campaign's base bid per daypart of its day.

Decision: at the start of every daypart of a campaign's day (``AdsConfig.daypart_hours``
local hours, by default four: 0-4, 4-8, ..., 20-24) the bidder picks the multiplier on the
campaign's base bid for the auctions of that daypart.

Actions (index = action id): multipliers 0.5, 0.75, 1.0, 1.25 and 1.5 on the base bid
(``AdsConfig.bid_multipliers``). Every action is always allowed (no mask features).

State features, in order, each built from the decision's own row of ``raw_ads`` (the bidder
logs its decision context with every decision) and equal to
``offline_rl.simulator.ads.AdsSimulator.observe``:

* ``hour_frac``: first local hour of the daypart / 23;
* ``hour_sin``, ``hour_cos``: sine and cosine of ``2 pi hour / 24``;
* ``budget_left_frac``: ``budget_left / daily_budget``;
* ``pacing_gap``: share of the budget spent, ``(daily_budget - budget_left) / daily_budget``,
  minus the pacing curve's share of the day's auctions already passed
  (``traffic_share_elapsed``): positive when spending ahead of the traffic;
* ``traffic_left``: ``1 - traffic_share_elapsed``, the share of the day's auctions ahead;
* ``cvr_factor``: the daypart's forecast conversion-rate factor (column ``cvr_factor``);
* ``value_ratio``: expected margin per click over the base bid, ``value_per_click /
  (bid / bid_multiplier)``: what a click is worth for what it costs at multiplier 1;
* ``competition_ratio``: the forecast competing bid in the daypart over the base bid,
  ``competitor_bid_forecast / (bid / bid_multiplier)``;
* ``budget_ratio``: ``daily_budget / planned_spend``, how generous today's budget is compared
  with what a day at the base bid is expected to cost.

Reward: the daypart's ``conversion_value - spend`` (margin of the attributed orders minus the
cost of the clicks), in currency units, undiscounted.

Episode: one campaign-day (``episode_id``) from local midnight in the campaign's market, so
the day of a campaign west of UTC crosses UTC midnight; its partition is the UTC date of its
first decision. It ends (``terminal``) after the daypart in which the budget runs out
(``budget_exhausted``) or after its last daypart (``end_hour`` 24); a campaign-day whose end
is not in the loaded data yet ends in a ``timeout`` at its last loaded decision. A day lasts
at most 24 hours, so one raw partition either side (``lookback_days = lookahead_days = 1``)
holds every campaign-day that starts on the day, and shows which of the day's rows belong to
days that started the day before (those are not claimed).

Behaviour policy: budget pacing ("standard delivery"), once per daypart: bid up when spending
behind the traffic curve and down when ahead, around the multiplier ``1 - gain *
pacing_gap``, as a softmax over the multipliers mixed with uniform exploration; the logged
``behavior_prob`` is the probability of the multiplier it chose. It ignores what clicks are
worth and the daypart's competition. Its parameters (``behavior_pacing_gain``,
``behavior_temperature``, ``behavior_epsilon``) and the dynamics are documented in
``offline_rl.simulator.ads``.

Segment column: ``vertical``, the product category a campaign advertises. Verticals differ in
competition and order margins, so holding one out tests transfer to a new kind of campaign
(markets only shift the clock, and single campaigns are too fine-grained to be segments).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import polars as pl

from offline_rl.data.schemas import ADS
from offline_rl.domains.base import Domain, next_state_columns, transition_columns
from offline_rl.simulator.ads import HOURS, SIMULATION, AdsConfig, feature_names

SOURCE = "ads"

_POSITIVE = ("bid", "bid_multiplier", "daily_budget", "planned_spend")
"""Raw columns the features divide by: a row where one is not positive is rejected."""


def _feature_exprs() -> dict[str, pl.Expr]:
    """One expression per state feature, on the columns of ``raw_ads`` (float64 until cast)."""
    hour = pl.col("hour").cast(pl.Float64)
    angle = 2.0 * math.pi * hour / HOURS
    base_bid = pl.col("bid") / pl.col("bid_multiplier")
    budget = pl.col("daily_budget")
    return {
        "hour_frac": hour / (HOURS - 1),
        "hour_sin": angle.sin(),
        "hour_cos": angle.cos(),
        "budget_left_frac": pl.col("budget_left") / budget,
        "pacing_gap": (budget - pl.col("budget_left")) / budget
        - pl.col("traffic_share_elapsed"),
        "traffic_left": 1.0 - pl.col("traffic_share_elapsed"),
        "cvr_factor": pl.col("cvr_factor"),
        "value_ratio": pl.col("value_per_click") / base_bid,
        "competition_ratio": pl.col("competitor_bid_forecast") / base_bid,
        "budget_ratio": budget / pl.col("planned_spend"),
    }


FEATURES: tuple[str, ...] = tuple(feature_names())
_EXPRS = _feature_exprs()
if set(_EXPRS) != set(FEATURES):  # the simulator's observation and the logs must agree
    raise RuntimeError(f"ads features from the logs {sorted(_EXPRS)} differ from the "
                       f"simulator's {sorted(FEATURES)}")

EXTRA_COLUMNS = ("campaign_id", "vertical", "hour", "end_hour", "bid_multiplier", "bid",
                 "clicks", "conversions", "spend", "conversion_value", "budget_exhausted")
"""Columns kept after the required ones (ids, the segment column and the daypart's delivery)."""


def check_decision_context(rows: pl.LazyFrame) -> None:
    """Raises ``ValueError`` naming the first row whose denominators are not positive."""
    bad = pl.any_horizontal(~(pl.col(c) > 0) for c in _POSITIVE)
    first = (
        rows.filter(bad)
        .select("event_id", *_POSITIVE, n=pl.len())
        .sort("event_id")
        .head(1)
        .collect()
    )
    if first.height:
        row = first.row(0, named=True)
        field = next(c for c in _POSITIVE if not (row[c] is not None and row[c] > 0))
        raise ValueError(f"raw_ads: {row['n']} row(s) with a non-positive decision context, "
                         f"e.g. event_id {row['event_id']!r}: {field} = {row[field]}")


def build_ads_transitions(
    raw: Mapping[str, pl.LazyFrame], *, sessions_from: dt.date, sessions_to: dt.date,
    data_end: dt.datetime,
) -> pl.LazyFrame:
    """Transitions of the campaign-days whose first decision falls in
    ``[sessions_from, sessions_to]`` (UTC dates), as one lazy query over ``raw_ads``.

    Args:
        raw: ``{"ads": raw_ads rows}`` covering those days and one day either side.
        sessions_from: First start date to keep.
        sessions_to: Last start date to keep.
        data_end: End of the loaded data (exclusive, tz-aware): rows at or after it are
            ignored, and a campaign-day whose end is not before it ends in a timeout.
    """
    if data_end.tzinfo is None:
        raise ValueError("data_end must be timezone-aware (UTC)")
    rows = raw[SOURCE].filter(pl.col("event_ts") < pl.lit(data_end))
    check_decision_context(rows)
    feature_cols = [f"f_{n}" for n in FEATURES]
    # rows sorted by campaign-day and daypart: a day's boundaries are where the id changes
    first = pl.col("episode_id") != pl.col("episode_id").shift(1)
    last = pl.col("episode_id") != pl.col("episode_id").shift(-1)
    row = pl.int_range(pl.len(), dtype=pl.Int32)
    ended = pl.col("budget_exhausted") | (pl.col("end_hour") >= HOURS)
    return (
        rows.with_columns(start_ts=pl.col("event_ts").min().over("episode_id"))
        .filter(pl.col("start_ts").dt.date().is_between(sessions_from, sessions_to))
        .sort("episode_id", "hour", "event_ts")
        .with_columns(_first=first.fill_null(True), _last=last.fill_null(True))
        .with_columns(
            step=row - pl.when(pl.col("_first")).then(row).forward_fill(),
            reward=pl.col("conversion_value") - pl.col("spend"),
            **{f"f_{n}": _EXPRS[n].cast(pl.Float32) for n in FEATURES},
        )
        .with_columns(
            *next_state_columns(feature_cols),
            terminal=pl.col("_last") & ended,
            timeout=pl.col("_last") & ~ended,
        )
        .select(*transition_columns(
            feature_cols, partition_date=pl.col("start_ts").dt.date(), episode_id="episode_id",
            step="step", decision_id="event_id", decision_ts="event_ts",
            extra=EXTRA_COLUMNS))
    )


_CONFIG = AdsConfig()

DOMAIN = Domain(
    name="ads",
    title="Which multiplier on a search-ad campaign's base bid to use in each daypart of its "
          "day, under a daily budget.",
    sources=(SOURCE,),
    feature_names=FEATURES,
    action_names=tuple(f"bid_x{m:.2f}" for m in _CONFIG.bid_multipliers),
    build_transitions=build_ads_transitions,
    simulation=SIMULATION,
    landing=(ADS,),
    order=4,
    lookback_days=1,
    lookahead_days=1,
    segment_column="vertical",
    progress_feature="hour_frac",
    reward_doc="Margin of the daypart's attributed orders minus its ad spend.",
    episode_doc="A campaign-day in the campaign's market time zone; it ends when the daily "
                f"budget runs out or after its {HOURS // _CONFIG.daypart_hours} dayparts.",
    extra={"bid_multipliers": list(_CONFIG.bid_multipliers), "reward_unit": "currency"},
    gate_max_weight_share=1.0,  # measured: see Domain.gate_max_weight_share
)
