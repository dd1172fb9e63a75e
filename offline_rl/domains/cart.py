"""Cart interventions: which incentive, if any, to show each time a user opens the cart page.

Decision: at every visit of a cart page the shop's decision service picks the incentive shown
on it; the ``offer`` event of ``raw_cart`` logs the choice, its probability and the decision's
context.

Actions (index = action id), every one always allowed (no mask features): ``none``,
``coupon_5`` (5% off the merchandise), ``coupon_15`` (15% off), ``free_shipping`` (the flat
shipping fee is waived; the shop pays the carrier). Rates and fees: ``CartConfig``.

State features, in order, each built from the offer's row of ``raw_cart`` and the cart's
earlier offers, and equal to ``offline_rl.simulator.cart.CartSimulator.observe``:

* ``segment_0`` .. ``segment_3``: the user's CRM segment (``user_segment``), one-hot;
* ``device_mobile``, ``device_desktop``: the device (``device``), one-hot;
* ``log_value``: ``log(1 + cart_value) / 6``, the cart's merchandise value;
* ``n_items``: ``n_items / max_items`` (``CartConfig.max_items`` = 5);
* ``margin_rate``: ``cart_margin / cart_value``, the share of the cart's value that is
  margin (what a discount eats into);
* ``visit_frac``: ``visit / horizon``, the cart-page visit index (``CartConfig.horizon`` = 6);
* ``declined_frac``: incentives shown at the cart's earlier visits / horizon (the cart went
  on after each, so each was declined; users who were shown coupons learn to wait for them);
* ``last_offer``: the previous visit's action / 3 (0 at the first visit);
* ``coupon_affinity``: the CRM's score of the user's past coupon use, in (0, 1), logged
  with each offer (a noisy proxy of the user's latent price sensitivity).

Reward: at the checkout that ends a visit, the cart's merchandise margin minus the cost of the
incentive (``margin - incentive_cost`` of the ``checkout`` event, which names its offer in
``ref_event_id``); 0 for visits that do not end in a checkout. Currency units, undiscounted.
The amounts are logged in cents, so rewards equal the simulator's to within a cent.

Episode: one cart (``episode_id`` = ``cart_id``), from its first cart-page visit; its
partition is the UTC date of that visit's offer. It ends (``terminal``) at the visit followed
by a ``checkout`` or an ``abandon`` event (a cart is abandoned an hour after a visit with no
checkout and no return, and at the latest after ``horizon`` visits). Visits can be up to 20
hours apart, so a cart may last several days: the query reads ``lookahead_days`` raw
partitions after the start day (``ceil(max_cart_minutes / 1440)``, 5 with the defaults),
enough for the longest possible cart, and claims a cart only in the partition of its first
offer (``visit`` 0), so no earlier partition is needed (``lookback_days`` = 0) and no cart is
claimed twice. A cart whose checkout or abandonment is not in the loaded data yet ends in a
``timeout`` at its last loaded visit; it is completed when the later days are loaded and the
partition is rebuilt.

Behaviour policy ("coupon rules"): a softmax over rule scores mixed with uniform
exploration, the logged ``behavior_prob`` being the probability of the incentive shown.
Coupons grow more likely with each return visit (a cart that keeps coming back is at risk),
the large coupon also with the user's coupon affinity, and free shipping goes to carts worth
more than a threshold. It ignores margins and that early offers teach users to wait.
Parameters (``behavior_*``) and the dynamics (checkout and abandon utilities, price
sensitivity, shipping pain, declined-offer penalty, item additions): documented in
``offline_rl.simulator.cart``.

Segment column: ``user_segment`` (the CRM segment, kept as an extra column), for transfer of
a policy to a segment it was not trained on. Segments differ in how readily their users buy
(``CartConfig.segment_checkout_shift``), so where an incentive pays differs by segment.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import polars as pl

from offline_rl.data.schemas import CART
from offline_rl.domains.base import Domain, transition_columns
from offline_rl.simulator.cart import (
    OFFERS,
    SIMULATION,
    CartConfig,
    feature_names,
    max_cart_minutes,
)
from offline_rl.simulator.world import DEVICES, WorldConfig

SOURCE = "cart"

_CONFIG = CartConfig()
_N_SEGMENTS = WorldConfig().n_segments

_END_EVENTS = ("checkout", "abandon")
"""Event types that end a cart (each names the offer of the visit it ends)."""


def _feature_exprs() -> dict[str, pl.Expr]:
    """One expression per state feature, on the offer rows of ``raw_cart`` (float64 until
    cast); the cart's earlier visits enter through windows ordered by ``visit``."""
    h = float(_CONFIG.horizon)
    value = pl.col("cart_value")
    shown = (pl.col("action") != 0).cast(pl.Int32)
    exprs = {f"segment_{s}": (pl.col("user_segment") == s).cast(pl.Float64)
             for s in range(_N_SEGMENTS)}
    exprs |= {f"device_{d}": (pl.col("device") == d).cast(pl.Float64) for d in DEVICES}
    exprs |= {
        "log_value": value.log1p() / 6.0,
        "n_items": pl.col("n_items") / float(_CONFIG.max_items),
        "margin_rate": pl.col("cart_margin") / pl.max_horizontal(value, pl.lit(1e-9)),
        "visit_frac": pl.col("visit") / h,
        "declined_frac": (shown.cum_sum() - shown).over("cart_id", order_by="visit") / h,
        "last_offer": pl.col("action").shift(1).over("cart_id", order_by="visit")
        .fill_null(0) / 3.0,
        "coupon_affinity": pl.col("coupon_affinity"),
    }
    return exprs


FEATURES: tuple[str, ...] = tuple(feature_names(_N_SEGMENTS))
_EXPRS = _feature_exprs()
if list(_EXPRS) != list(FEATURES):  # the simulator's observation and the logs must agree
    raise RuntimeError(f"cart features from the logs {list(_EXPRS)} differ from the "
                       f"simulator's {list(FEATURES)}")

EXTRA_COLUMNS = ("user_id", "user_segment", "device", "visit", "offer", "cart_value",
                 "cart_margin", "n_items", "coupon_affinity", "checkout", "abandon", "revenue",
                 "incentive_cost")
"""Columns kept after the required ones (ids, the segment column, the cart and its outcome)."""

_CONTEXT = ("user_segment", "device", "visit", "cart_value", "cart_margin", "n_items",
            "action", "behavior_prob", "coupon_affinity")
"""Offer columns the features and the action are built from: none may be null."""


def _outcomes(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per offer event: whether a checkout / an abandonment ended its visit, and the reward."""
    is_checkout = pl.col("event_type") == "checkout"
    return (
        events.filter(pl.col("event_type").is_in(_END_EVENTS))
        .group_by("ref_event_id")
        .agg(
            n_end=pl.len(),
            checkout=is_checkout.any(),
            abandon=(pl.col("event_type") == "abandon").any(),
            revenue=pl.col("revenue").filter(is_checkout).sum(),
            incentive_cost=pl.col("incentive_cost").filter(is_checkout).sum(),
            reward=(pl.col("margin") - pl.col("incentive_cost")).filter(is_checkout).sum(),
        )
    )


def _check(offers: pl.LazyFrame) -> None:
    """Raises ``ValueError`` naming the first cart whose logged offers cannot be an episode.

    ``offers`` are the claimed carts' offer rows joined to their outcomes. A cart's visits must
    be ``0..n-1`` once each, only its last visit may end it, no visit may be ended twice, and
    the decision context must be complete.
    """
    missing = pl.any_horizontal(pl.col(c).is_null() for c in _CONTEXT)
    per_cart = (
        offers.group_by("cart_id")
        .agg(
            n=pl.len(),
            visits=pl.col("visit").n_unique(),
            max_visit=pl.col("visit").max(),
            ended_early=(pl.col("n_end").fill_null(0) > 0).filter(
                pl.col("visit") < pl.col("visit").max()).sum(),
            ended_twice=(pl.col("n_end").fill_null(0) > 1).sum(),
            missing=pl.col("event_id").filter(missing).first(),
            visit_list=pl.col("visit").sort(),
        )
        .filter((pl.col("visits") != pl.col("n")) | (pl.col("max_visit") != pl.col("n") - 1)
                | (pl.col("ended_early") > 0) | (pl.col("ended_twice") > 0)
                | pl.col("missing").is_not_null())
        .sort("cart_id")
        .head(1)
        .collect()
    )
    if not per_cart.height:
        return
    row = per_cart.row(0, named=True)
    cart = row["cart_id"]
    if row["missing"] is not None:
        reason = f"offer {row['missing']!r} lacks its decision context ({', '.join(_CONTEXT)})"
    elif row["ended_twice"]:
        reason = "a visit has more than one checkout/abandon event"
    elif row["ended_early"]:
        reason = "a checkout/abandon is followed by further visits"
    else:
        reason = f"offers logged for visits {row['visit_list']}, expected 0..{row['n'] - 1}"
    raise ValueError(f"raw_cart: cart {cart!r}: {reason}")


def build_cart_transitions(
    raw: Mapping[str, pl.LazyFrame], *, sessions_from: dt.date, sessions_to: dt.date,
    data_end: dt.datetime,
) -> pl.LazyFrame:
    """Transitions of the carts whose first offer falls in ``[sessions_from, sessions_to]``
    (UTC dates), as one lazy query over ``raw_cart``.

    Args:
        raw: ``{"cart": raw_cart rows}`` from the first start day to ``lookahead_days`` after
            the last.
        sessions_from: First start date to keep.
        sessions_to: Last start date to keep.
        data_end: End of the loaded data (exclusive, tz-aware): events at or after it are
            ignored, and a cart whose checkout or abandonment is not before it ends in a
            timeout.

    Raises:
        ValueError: A claimed cart's offers are not one per visit ``0..n-1``, a visit other
            than the last ends the cart, or an offer lacks its decision context (first such
            cart named).
    """
    if data_end.tzinfo is None:
        raise ValueError("data_end must be timezone-aware (UTC)")
    events = raw[SOURCE].filter(pl.col("event_ts") < pl.lit(data_end))
    offers = (
        events.filter(pl.col("event_type") == "offer")
        .drop("revenue", "margin", "incentive_cost", "ref_event_id")
        .with_columns(start_ts=pl.col("event_ts").filter(pl.col("visit") == 0).min()
                      .over("cart_id"))
        .filter(pl.col("start_ts").dt.date().is_between(sessions_from, sessions_to))
        .join(_outcomes(events), left_on="event_id", right_on="ref_event_id", how="left")
    )
    _check(offers)
    feature_cols = [f"f_{n}" for n in FEATURES]
    last = pl.col("visit") == pl.col("visit").max().over("cart_id")
    ended = pl.col("n_end").is_not_null()
    return (
        offers.sort("cart_id", "visit")
        .with_columns(
            checkout=pl.col("checkout").fill_null(False),
            abandon=pl.col("abandon").fill_null(False),
            revenue=pl.col("revenue").fill_null(0.0),
            incentive_cost=pl.col("incentive_cost").fill_null(0.0),
            reward=pl.col("reward").fill_null(0.0),
            terminal=last & ended,
            timeout=last & ~ended,
            **{f"f_{n}": _EXPRS[n].cast(pl.Float32) for n in FEATURES},
        )
        .with_columns(
            pl.col(c).shift(-1).over("cart_id", order_by="visit").fill_null(0.0)
            .cast(pl.Float32)
            .alias(f"next_{c}") for c in feature_cols
        )
        .select(*transition_columns(
            feature_cols, partition_date=pl.col("start_ts").dt.date(), episode_id="cart_id",
            step="visit", decision_id="event_id", decision_ts="event_ts",
            extra=EXTRA_COLUMNS))
    )


DOMAIN = Domain(
    name="cart",
    title="Which incentive (none, a 5% or 15% coupon, free shipping) to show at each visit of "
          "a cart page.",
    sources=(SOURCE,),
    feature_names=FEATURES,
    action_names=OFFERS,
    build_transitions=build_cart_transitions,
    simulation=SIMULATION,
    landing=(CART,),
    order=2,
    lookback_days=0,
    lookahead_days=math.ceil(max_cart_minutes(_CONFIG) / 1440.0),
    segment_column="user_segment",
    progress_feature="visit_frac",
    reward_doc="Margin of the cart minus the incentive's cost when the visit ends in a "
               "checkout, else 0.",
    episode_doc="A cart, from its first cart-page visit; it ends at checkout or abandonment "
                f"(at most {_CONFIG.horizon} visits, possibly over several days).",
    extra={"coupon_rates": list(_CONFIG.coupon_rates), "shipping_fee": _CONFIG.shipping_fee,
           "reward_unit": "currency"},
)
