"""The ads domain: transitions from simulated raw_ads partitions, checked against the simulator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
import pytest

from offline_rl.domains.ads import DOMAIN, build_ads_transitions
from offline_rl.domains.base import check_transitions
from offline_rl.simulator import ads
from offline_rl.simulator.world import make_world

START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(4)]
MIDDLE = DAYS[1]
EVENTS_PER_DAY = 1200  # 30 campaigns a day


@pytest.fixture(scope="module")
def logs(recorder: Any) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Four days of raw_ads rows (with partition_date) and what the simulator saw."""
    world, config = make_world(), ads.SIMULATION.config
    frames, truth = [], []
    recorded = recorder(ads.AdsSimulator, ("campaign", "hour"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ads, "AdsSimulator", recorded)
        for i, day in enumerate(DAYS):
            recorded.records = []
            frames.append(ads.generate_ads(world, config, day, np.random.default_rng(i),
                                           EVENTS_PER_DAY)["ads"])
            for r in recorded.records:
                a = r["alive"]
                truth.append(pl.DataFrame({
                    "episode_id": [f"{day:%Y%m%d}-cmp{c:04d}" for c in r["campaign"][a]],
                    "hour": pl.Series(r["hour"][a], dtype=pl.Int32),
                    "obs": r["obs"][a],
                    "sim_action": r["action"][a],
                    "sim_reward": r["reward"][a],
                    "sim_done": r["done"][a],
                }))
    raw = pl.concat(frames).with_columns(partition_date=pl.col("event_ts").dt.date())
    return raw, pl.concat(truth)


def _build(raw: pl.DataFrame, day: dt.date, loaded_to: dt.date) -> pl.DataFrame:
    """The day's transitions from the raw partitions the pipeline would read."""
    return DOMAIN.build_day({"ads": raw}, day, loaded_to).collect()


def _crossing(raw: pl.DataFrame, day: dt.date) -> pl.Series:
    """Campaign-days generated for ``day`` that log hours on the next UTC date."""
    return (raw.filter(pl.col("episode_id").str.starts_with(f"{day:%Y%m%d}"))
            .group_by("episode_id").agg(d=pl.col("partition_date").n_unique())
            .filter(pl.col("d") > 1)["episode_id"])


def test_middle_day_meets_the_transitions_contract(logs):
    raw, _ = logs
    t = _build(raw, MIDDLE, MIDDLE + dt.timedelta(days=1))
    assert check_transitions(t, DOMAIN) == []
    assert list(t.columns[:len(DOMAIN.schema)]) == list(DOMAIN.schema)
    assert (t["partition_date"] == MIDDLE).all()
    generated = raw.filter(pl.col("episode_id").str.starts_with(f"{MIDDLE:%Y%m%d}"))
    assert t.height == generated.height
    assert t["episode_id"].n_unique() == generated["episode_id"].n_unique() == 30
    assert DOMAIN.segment_column in t.columns and t["vertical"].n_unique() > 1
    assert DOMAIN.mask_features == ()


def test_features_actions_rewards_terminals_equal_the_simulator(logs):
    raw, truth = logs
    t = _build(raw, MIDDLE, MIDDLE + dt.timedelta(days=1))
    both = t.join(truth, on=["episode_id", "hour"], how="left", validate="1:1").sort(
        "episode_id", "step")
    assert both["sim_action"].null_count() == 0
    obs = np.stack(both["obs"].to_numpy())
    np.testing.assert_allclose(both.select(DOMAIN.feature_columns).to_numpy(), obs,
                               rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(both["action"].to_numpy(), both["sim_action"].to_numpy())
    np.testing.assert_allclose(both["reward"].to_numpy(), both["sim_reward"].to_numpy(),
                               rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(both["terminal"].to_numpy(), both["sim_done"].to_numpy())
    assert not both["timeout"].any()
    # the next state is the following decision's state, zeros after the last one
    same = both["episode_id"].to_numpy()[1:] == both["episode_id"].to_numpy()[:-1]
    nxt = both.select(DOMAIN.next_feature_columns).to_numpy()
    np.testing.assert_allclose(nxt[:-1][same], obs[1:][same], rtol=1e-6, atol=1e-5)
    assert (nxt[both["terminal"].to_numpy()] == 0).all()
    # and the domain's simulator is the one that wrote the logs
    sim = DOMAIN.make_simulator("default")
    assert list(sim.feature_names) == list(DOMAIN.feature_names)
    assert sim.n_actions == DOMAIN.n_actions


def test_days_crossing_midnight_are_built_whole_in_one_partition(logs):
    raw, truth = logs
    crossing = _crossing(raw, MIDDLE)
    assert crossing.len() > 0
    loaded_to = DAYS[-1]
    middle = _build(raw, MIDDLE, loaded_to)
    following = _build(raw, DAYS[2], loaded_to)
    assert check_transitions(following, DOMAIN) == []
    # whole: every hour the simulator ran is there, ending in a terminal
    ours = middle.filter(pl.col("episode_id").is_in(crossing.implode()))
    assert ours["decision_ts"].dt.date().n_unique() == 2
    expected = truth.filter(pl.col("episode_id").is_in(crossing.implode()))
    assert ours.height == expected.height
    assert ours.group_by("episode_id").agg(pl.col("terminal").last())["terminal"].all()
    # once: the next day's partition reads those rows but does not claim them
    assert not following["episode_id"].is_in(middle["episode_id"].implode()).any()
    assert following["episode_id"].str.starts_with(f"{DAYS[2]:%Y%m%d}").all()
    assert (following["partition_date"] == DAYS[2]).all()


def test_days_not_over_in_the_loaded_data_end_in_a_timeout(logs):
    raw, _ = logs
    crossing = _crossing(raw, MIDDLE)
    complete = _build(raw, MIDDLE, MIDDLE + dt.timedelta(days=1))
    cut = _build(raw, MIDDLE, MIDDLE)  # the next day is not loaded yet
    assert check_transitions(cut, DOMAIN) == []
    ends = cut.filter(pl.col("terminal") | pl.col("timeout"))
    open_days = ends.filter("timeout")["episode_id"]
    assert sorted(open_days) == sorted(crossing)
    assert (ends.filter("timeout")["decision_ts"].dt.date() == MIDDLE).all()
    # campaign-days over before midnight are unchanged, terminal included
    closed = ~pl.col("episode_id").is_in(crossing.implode())
    assert cut.filter(closed).equals(complete.filter(closed))
    assert cut.filter(closed)["terminal"].sum() == complete["episode_id"].n_unique() - len(
        crossing)


def test_a_row_without_a_usable_decision_context_is_rejected_by_id(logs):
    raw, _ = logs
    bad_id = raw["event_id"][5]
    broken = raw.with_columns(planned_spend=pl.when(pl.col("event_id") == bad_id)
                              .then(0.0).otherwise(pl.col("planned_spend")))
    with pytest.raises(ValueError, match=f"event_id '{bad_id}': planned_spend = 0.0"):
        build_ads_transitions({"ads": broken.lazy()}, sessions_from=MIDDLE, sessions_to=MIDDLE,
                              data_end=dt.datetime(2026, 10, 5, tzinfo=dt.UTC))
