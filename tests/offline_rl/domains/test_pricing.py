"""The pricing domain: transitions from simulated raw partitions, checked against simulation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
import pytest

from offline_rl.domains.base import check_transitions
from offline_rl.domains.pricing import CONFIG, DOMAIN, build_pricing_transitions
from offline_rl.simulator import pricing
from offline_rl.simulator.world import make_world

HORIZON = CONFIG.horizon
START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(HORIZON + 1)]
MIDDLE = DAYS[1]
LAST = DAYS[-1]  # MIDDLE + HORIZON - 1: the middle day's seasons are over by then
EVENTS_PER_DAY = 800  # 10 SKU seasons start a day
TIME_COLUMN = {"pricing_changes": "change_ts", "pricing_sales": "sales_ts"}


@pytest.fixture(scope="module")
def logs(recorder: Any) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Raw rows of the seasons starting on 15 consecutive days (with partition_date) and what
    the simulator saw at each of their decisions."""
    world, config = make_world(), pricing.SIMULATION.config
    n_items = world.catalogue.n_items
    frames: dict[str, list[pl.DataFrame]] = {name: [] for name in TIME_COLUMN}
    truth = []
    recorded = recorder(pricing.PricingSimulator, ("sku", "t"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pricing, "PricingSimulator", recorded)
        for i, day in enumerate(DAYS):
            recorded.records = []
            out = pricing.generate_pricing(world, config, day, np.random.default_rng(i),
                                           EVENTS_PER_DAY)
            for name, frame in out.items():
                frames[name].append(frame)
            for r in recorded.records:
                a = r["alive"]
                idx = np.flatnonzero(a)
                truth.append(pl.DataFrame({
                    "episode_id": [f"{day:%Y%m%d}-i{k % n_items:03d}-m{k // n_items:02d}"
                                   for k in r["sku"][a]],
                    "step": pl.Series(r["t"][a], dtype=pl.Int32),
                    "obs": r["obs"][a],
                    "sim_prob": r["probs"][idx, r["action"][a]],
                    "sim_action": r["action"][a],
                    "sim_reward": r["reward"][a],
                    "sim_done": r["done"][a],
                }))
    raw = {name: pl.concat(parts).with_columns(
        partition_date=pl.col(TIME_COLUMN[name]).dt.date()) for name, parts in frames.items()}
    return raw, pl.concat(truth)


def _build(raw: dict[str, pl.DataFrame], day: dt.date, loaded_to: dt.date) -> pl.DataFrame:
    """The day's transitions from the raw partitions the pipeline would read."""
    return DOMAIN.build_day(raw, day, loaded_to).collect()


def _started(raw: dict[str, pl.DataFrame], day: dt.date) -> pl.DataFrame:
    """The decisions the generator logged for the seasons that start on ``day``."""
    return raw["pricing_changes"].filter(pl.col("episode_id").str.starts_with(f"{day:%Y%m%d}"))


def test_middle_day_meets_the_transitions_contract(logs):
    raw, _ = logs
    t = _build(raw, MIDDLE, LAST)
    assert check_transitions(t, DOMAIN) == []
    assert list(t.columns[:len(DOMAIN.schema)]) == list(DOMAIN.schema)
    assert (t["partition_date"] == MIDDLE).all()
    generated = _started(raw, MIDDLE)
    assert t.height == generated.height
    assert t["episode_id"].n_unique() == generated["episode_id"].n_unique() == 10
    assert DOMAIN.segment_column == "market_id" and t["market_id"].n_unique() > 1
    assert DOMAIN.mask_features == ()
    assert DOMAIN.n_actions == len(CONFIG.price_multipliers)


def test_features_actions_rewards_terminals_equal_the_simulator(logs):
    raw, truth = logs
    t = _build(raw, MIDDLE, LAST)
    both = t.join(truth, on=["episode_id", "step"], how="left", validate="1:1").sort(
        "episode_id", "step")
    assert both["sim_action"].null_count() == 0
    obs = np.stack(both["obs"].to_numpy())
    feats = both.select(DOMAIN.feature_columns).to_numpy()
    np.testing.assert_allclose(feats, obs, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(both["action"].to_numpy(), both["sim_action"].to_numpy())
    np.testing.assert_allclose(both["behavior_prob"].to_numpy(), both["sim_prob"].to_numpy(),
                               rtol=1e-12)
    # margins are logged in cents; prices and costs are whole cents, so nothing is lost
    np.testing.assert_allclose(both["reward"].to_numpy(), both["sim_reward"].to_numpy(),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(both["terminal"].to_numpy(), both["sim_done"].to_numpy())
    assert not both["timeout"].any()
    # both ways a season ends occur: sold out early, and the last day of the season
    ends = both.filter("terminal")
    assert (ends["step"] < HORIZON - 1).any() and (ends["step"] == HORIZON - 1).any()
    # the next state is the following decision's state, zeros after the last one
    same = both["episode_id"].to_numpy()[1:] == both["episode_id"].to_numpy()[:-1]
    nxt = both.select(DOMAIN.next_feature_columns).to_numpy()
    np.testing.assert_allclose(nxt[:-1][same], obs[1:][same], rtol=1e-6, atol=1e-5)
    assert (nxt[both["terminal"].to_numpy()] == 0).all()
    # and the domain's simulator is the one that wrote the logs
    sim = DOMAIN.make_simulator("default")
    assert list(sim.feature_names) == list(DOMAIN.feature_names)
    assert sim.n_actions == DOMAIN.n_actions


def test_seasons_spanning_days_are_built_whole_in_exactly_one_partition(logs):
    raw, _ = logs
    parts = {day: _build(raw, day, LAST) for day in DAYS[:3]}
    for day, t in parts.items():
        assert check_transitions(t, DOMAIN) == []
        loaded = _started(raw, day).filter(pl.col("partition_date") <= LAST)
        assert t.height == loaded.height  # every loaded day of every season
        assert t["episode_id"].str.starts_with(f"{day:%Y%m%d}").all()
    middle = parts[MIDDLE]
    # seasons run over many UTC dates and still form one episode of the middle day
    dates = middle.group_by("episode_id").agg(n=pl.col("decision_ts").dt.date().n_unique())
    assert dates["n"].max() == HORIZON
    # the partitions before and after read the same raw rows but claim none of its seasons
    ids = [set(t["episode_id"]) for t in parts.values()]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and not (ids[0] & ids[2])
    later = raw["pricing_changes"].filter(pl.col("partition_date") > MIDDLE)
    assert later["episode_id"].str.starts_with(f"{DAYS[0]:%Y%m%d}").any()


def test_seasons_not_over_in_the_loaded_data_end_in_a_timeout(logs):
    raw, _ = logs
    complete = _build(raw, MIDDLE, LAST)
    k = int(complete.filter("terminal")["step"].min())  # the first day a season sold out
    assert k < HORIZON - 1
    loaded_to = MIDDLE + dt.timedelta(days=k)  # the later days are not loaded yet
    cut = _build(raw, MIDDLE, loaded_to)
    assert check_transitions(cut, DOMAIN) == []
    assert cut["decision_ts"].max().date() == loaded_to
    ended = complete.filter(pl.col("terminal") & (pl.col("step") <= k))["episode_id"]
    assert 0 < ended.len() < complete["episode_id"].n_unique()
    ends = cut.filter(pl.col("terminal") | pl.col("timeout"))
    assert sorted(ends.filter("terminal")["episode_id"]) == sorted(ended)
    open_ = ends.filter("timeout")
    assert open_.height == cut["episode_id"].n_unique() - ended.len()
    assert (open_["step"] == k).all() and not open_["sold_out"].any()
    assert (open_.select(DOMAIN.next_feature_columns).to_numpy() == 0).all()
    # every other row is exactly what the complete build holds
    rest = cut.filter(~pl.col("timeout"))
    assert rest.equals(complete.filter(pl.col("decision_id").is_in(
        rest["decision_id"].implode())))


def test_a_missing_sales_day_ends_the_season_in_a_timeout_before_it(logs):
    raw, _ = logs
    episode = _build(raw, MIDDLE, LAST).filter(pl.col("step") == 5)["episode_id"][0]
    gap = {**raw, "pricing_sales": raw["pricing_sales"].filter(
        ~((pl.col("episode_id") == episode) & (pl.col("day_index") == 5)))}
    t = _build(gap, MIDDLE, LAST).filter(pl.col("episode_id") == episode)
    assert t["step"].to_list() == [0, 1, 2, 3, 4]
    assert t["timeout"].to_list() == [False] * 4 + [True]
    assert not t["terminal"].any()


def test_a_decision_without_a_usable_context_is_rejected_by_id(logs):
    raw, _ = logs
    bad_id = _started(raw, MIDDLE)["change_id"][3]
    broken = {**raw, "pricing_changes": raw["pricing_changes"].with_columns(
        demand_forecast=pl.when(pl.col("change_id") == bad_id).then(0.0)
        .otherwise(pl.col("demand_forecast")))}
    with pytest.raises(ValueError, match=f"change_id '{bad_id}': demand_forecast = 0.0"):
        _build(broken, MIDDLE, LAST)


def test_a_season_longer_than_the_window_is_rejected(logs):
    raw, _ = logs
    longer = {**raw, "pricing_changes": raw["pricing_changes"].with_columns(
        season_days=pl.lit(HORIZON + 1, dtype=pl.Int32))}
    with pytest.raises(ValueError, match="season_days = 15"):
        build_pricing_transitions({k: v.lazy() for k, v in longer.items()},
                                  sessions_from=MIDDLE, sessions_to=MIDDLE,
                                  data_end=dt.datetime(2026, 10, 20, tzinfo=dt.UTC))
