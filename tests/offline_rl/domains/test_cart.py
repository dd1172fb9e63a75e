"""The cart domain: transitions from simulated raw_cart partitions, checked against the sim."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
import pytest

from offline_rl.domains.base import check_transitions
from offline_rl.domains.cart import DOMAIN, build_cart_transitions
from offline_rl.simulator import cart
from offline_rl.simulator.world import make_world

START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(5)]
MIDDLE = DAYS[1]
EVENTS_PER_DAY = 20_000  # about 300 carts a day


@pytest.fixture(scope="module")
def logs(recorder: Any) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Five days of raw_cart rows (with partition_date) and what the simulator saw per visit."""
    world, config = make_world(), cart.SIMULATION.config
    frames, truth = [], []
    recorded = recorder(cart.CartSimulator, ("visit",))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cart, "CartSimulator", recorded)
        for i, day in enumerate(DAYS):
            recorded.records = []
            frames.append(cart.generate_cart(world, config, day, np.random.default_rng(i),
                                             EVENTS_PER_DAY)["cart"])
            for r in recorded.records:
                a = r["alive"]
                rows = np.flatnonzero(a)
                action = r["action"][a]
                truth.append(pl.DataFrame({
                    "episode_id": [f"{day:%Y%m%d}-c{c:05d}" for c in rows],
                    "visit": pl.Series(r["visit"][a], dtype=pl.Int32),
                    "obs": r["obs"][a],
                    "sim_action": action,
                    "sim_prob": r["probs"][rows, action],
                    "sim_reward": r["reward"][a],
                    "sim_done": r["done"][a],
                }))
    raw = pl.concat(frames)
    # carts lasting several days are rare at this volume: stretch one afternoon cart of the
    # middle day with three or more visits by 20 hours before each of its second and third
    # visits, so its events span at least three dates (the dynamics do not depend on time)
    first = raw.filter((pl.col("event_type") == "offer") & (pl.col("visit") == 0))
    visits = raw.filter(pl.col("event_type") == "offer").group_by("cart_id").agg(n=pl.len())
    long_cart = (first.join(visits, on="cart_id")
                 .filter((pl.col("event_ts").dt.date() == MIDDLE)
                         & (pl.col("event_ts").dt.hour() >= 12) & (pl.col("n") >= 3))
                 .sort("cart_id")["cart_id"][0])
    later = (pl.col("visit") >= 1).cast(pl.Int64) + (pl.col("visit") >= 2).cast(pl.Int64)
    raw = raw.with_columns(event_ts=pl.when(pl.col("cart_id") == long_cart)
                           .then(pl.col("event_ts") + pl.duration(hours=20 * later))
                           .otherwise(pl.col("event_ts")))
    raw = raw.with_columns(partition_date=pl.col("event_ts").dt.date())
    return raw, pl.concat(truth)


def _build(raw: pl.DataFrame, day: dt.date, loaded_to: dt.date) -> pl.DataFrame:
    """The day's transitions from the raw partitions the pipeline would read."""
    return DOMAIN.build_day({"cart": raw}, day, loaded_to).collect()


def _carts(raw: pl.DataFrame) -> pl.DataFrame:
    """Per cart: the date of its first offer, how many UTC dates its events span, its end."""
    return raw.group_by("cart_id").agg(
        start=pl.col("event_ts").filter(pl.col("event_type") == "offer").min().dt.date(),
        dates=pl.col("partition_date").n_unique(),
        end_ts=pl.col("event_ts").filter(pl.col("event_type").is_in(["checkout", "abandon"]))
        .max(),
        visits=(pl.col("event_type") == "offer").sum(),
    )


def test_middle_day_meets_the_transitions_contract(logs):
    raw, _ = logs
    t = _build(raw, MIDDLE, DAYS[-1])
    assert check_transitions(t, DOMAIN) == []
    assert list(t.columns[:len(DOMAIN.schema)]) == list(DOMAIN.schema)
    assert (t["partition_date"] == MIDDLE).all()
    mine = _carts(raw).filter(pl.col("start") == MIDDLE)
    assert t["episode_id"].n_unique() == mine.height > 250
    assert t.height == mine["visits"].sum()
    assert DOMAIN.segment_column in t.columns and t["user_segment"].n_unique() == 4
    assert DOMAIN.mask_features == () and DOMAIN.n_actions == 4
    # every cart of the day is over in the loaded data: exactly its last visit is terminal
    last = pl.col("step") == pl.col("step").max().over("episode_id")
    assert t.select(pl.col("terminal") == last).to_series().all()
    # the longest possible cart fits in the partitions read after its start day
    assert (DOMAIN.lookback_days, DOMAIN.lookahead_days) == (0, 5)


def test_features_actions_rewards_terminals_equal_the_simulator(logs):
    raw, truth = logs
    t = _build(raw, MIDDLE, DAYS[-1])
    both = t.join(truth, left_on=["episode_id", "step"], right_on=["episode_id", "visit"],
                  how="left", validate="1:1").sort("episode_id", "step")
    assert both["sim_action"].null_count() == 0
    obs = np.stack(both["obs"].to_numpy())
    np.testing.assert_allclose(both.select(DOMAIN.feature_columns).to_numpy(), obs,
                               rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(both["action"].to_numpy(), both["sim_action"].to_numpy())
    np.testing.assert_allclose(both["behavior_prob"].to_numpy(), both["sim_prob"].to_numpy(),
                               rtol=1e-12)
    # amounts are logged in cents: margin and incentive cost are each rounded
    np.testing.assert_allclose(both["reward"].to_numpy(), both["sim_reward"].to_numpy(),
                               rtol=0, atol=0.0101)
    assert (both["reward"] > 0).sum() > 100
    np.testing.assert_array_equal(both["terminal"].to_numpy(), both["sim_done"].to_numpy())
    assert not both["timeout"].any()
    # the next state is the following visit's state, zeros after the last one
    same = both["episode_id"].to_numpy()[1:] == both["episode_id"].to_numpy()[:-1]
    nxt = both.select(DOMAIN.next_feature_columns).to_numpy()
    np.testing.assert_allclose(nxt[:-1][same], obs[1:][same], rtol=1e-6, atol=1e-5)
    assert (nxt[both["terminal"].to_numpy()] == 0).all()
    # coupons shown earlier in the cart are counted and remembered
    assert (both["f_declined_frac"] > 0).any() and (both["f_last_offer"] > 0).any()
    # and the domain's simulator is the one that wrote the logs
    sim = DOMAIN.make_simulator("default")
    assert list(sim.feature_names) == list(DOMAIN.feature_names)
    assert sim.n_actions == DOMAIN.n_actions


def test_carts_spanning_midnight_are_built_whole_in_one_partition(logs):
    raw, truth = logs
    carts = _carts(raw)
    crossing = carts.filter((pl.col("start") == MIDDLE) & (pl.col("dates") > 1))["cart_id"]
    several = carts.filter((pl.col("start") == MIDDLE) & (pl.col("dates") > 2))["cart_id"]
    assert crossing.len() > 10 and several.len() >= 1
    middle = _build(raw, MIDDLE, DAYS[-1])
    following = _build(raw, DAYS[2], DAYS[-1])
    assert check_transitions(following, DOMAIN) == []
    # whole: every visit the simulator ran is there, ending in a terminal
    ours = middle.filter(pl.col("episode_id").is_in(crossing.implode()))
    assert ours["episode_id"].n_unique() == crossing.len()
    expected = truth.filter(pl.col("episode_id").is_in(crossing.implode()))
    assert ours.height == expected.height
    assert ours.group_by("episode_id").agg(pl.col("terminal").last())["terminal"].all()
    long = middle.filter(pl.col("episode_id").is_in(several.implode()))
    assert long["decision_ts"].dt.date().n_unique() > 1 and long["terminal"].sum() == len(several)
    # once: the next day's partition reads those rows but does not claim them
    assert not following["episode_id"].is_in(middle["episode_id"].implode()).any()
    assert (following["partition_date"] == DAYS[2]).all()
    # building several days at once gives exactly the per-day partitions
    span = DOMAIN.build({"cart": raw.lazy()}, sessions_from=DAYS[0], sessions_to=DAYS[2],
                        data_end=dt.datetime.combine(DAYS[-1] + dt.timedelta(days=1), dt.time(),
                                                     tzinfo=dt.UTC)).collect()
    per_day = pl.concat([_build(raw, d, DAYS[-1]) for d in DAYS[:3]])
    key = ["episode_id", "step"]
    assert span.sort(key).equals(per_day.sort(key))
    assert span["episode_id"].n_unique() == carts.filter(pl.col("start") <= DAYS[2]).height


def test_carts_not_over_in_the_loaded_data_end_in_a_timeout(logs):
    raw, _ = logs
    data_end = dt.datetime.combine(MIDDLE + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    open_carts = _carts(raw).filter((pl.col("start") == MIDDLE)
                                    & (pl.col("end_ts") >= data_end))["cart_id"]
    assert open_carts.len() > 5
    complete = _build(raw, MIDDLE, DAYS[-1])
    cut = _build(raw, MIDDLE, MIDDLE)  # the following days are not loaded yet
    assert check_transitions(cut, DOMAIN) == []
    ends = cut.filter(pl.col("terminal") | pl.col("timeout"))
    assert sorted(ends.filter("timeout")["episode_id"]) == sorted(open_carts)
    assert (ends.filter("timeout")["decision_ts"] < data_end).all()
    assert ends.filter("timeout")["reward"].sum() == 0
    # carts over before midnight are unchanged, terminal included
    closed = ~pl.col("episode_id").is_in(open_carts.implode())
    assert cut.filter(closed).equals(complete.filter(closed))
    # open carts keep their loaded visits' states; only what follows the cut is missing
    key = ["episode_id", "step"]
    shared = cut.filter(~closed).join(complete, on=key, how="inner", suffix="_c")
    assert shared.height == cut.filter(~closed).height
    for c in DOMAIN.feature_columns:
        assert (shared[c] == shared[f"{c}_c"]).all()


def test_a_cart_with_a_missing_visit_or_context_is_rejected_by_id(logs):
    raw, _ = logs
    data_end = dt.datetime.combine(DAYS[-1] + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    long_cart = _carts(raw).filter((pl.col("start") == MIDDLE) & (pl.col("visits") >= 3)) \
        .sort("cart_id")["cart_id"][0]
    gap = raw.filter(pl.col("event_id") != f"{long_cart}-v1-offer")
    with pytest.raises(ValueError, match=f"cart '{long_cart}': offers logged for visits "
                                         r"\[0, 2"):
        build_cart_transitions({"cart": gap.lazy()}, sessions_from=MIDDLE, sessions_to=MIDDLE,
                               data_end=data_end)
    bad_id = f"{long_cart}-v2-offer"
    no_score = raw.with_columns(coupon_affinity=pl.when(pl.col("event_id") == bad_id)
                                .then(None).otherwise(pl.col("coupon_affinity")))
    with pytest.raises(ValueError, match=f"offer '{bad_id}' lacks its decision context"):
        build_cart_transitions({"cart": no_score.lazy()}, sessions_from=MIDDLE,
                               sessions_to=MIDDLE, data_end=data_end)
    with pytest.raises(ValueError, match="timezone-aware"):
        build_cart_transitions({"cart": raw.lazy()}, sessions_from=MIDDLE, sessions_to=MIDDLE,
                               data_end=data_end.replace(tzinfo=None))


def test_segments_shift_checkout_and_must_match_the_world():
    world = make_world()
    sim = cart.CartSimulator(world)
    shift = np.asarray(sim.config.segment_checkout_shift)
    assert shift.shape == (world.config.n_segments,) and np.ptp(shift) > 0
    with pytest.raises(ValueError, match="segment_checkout_shift has 2 values for 4 segments"):
        cart.CartSimulator(world, cart.CartConfig(segment_checkout_shift=(0.1, -0.1)))
