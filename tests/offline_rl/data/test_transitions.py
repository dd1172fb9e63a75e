import datetime as dt

import numpy as np
import polars as pl
import pytest

from offline_rl.data.arrays import decision_arrays, to_mdp_dataset
from offline_rl.domains.recommendation import (
    RecommendationSpec,
    build_recommendation_transitions,
)
from offline_rl.simulator.recommendation import (
    RecommendationSimulator,
    clickstream_events,
    session_start_times,
    simulate_sessions,
)
from offline_rl.simulator.world import make_world

DAY = dt.date(2026, 10, 1)


def _simulated(n: int = 400, seed: int = 0, day: dt.date = DAY):
    world = make_world()
    sim = RecommendationSimulator(world)
    rng = np.random.default_rng(seed)
    users = rng.integers(0, world.users.n_users, n)
    starts = session_start_times(day, n, rng)
    log = simulate_sessions(sim, users, rng)
    return log, clickstream_events(world, log, day, starts, rng)


def _build(events: pl.DataFrame, data_end: dt.datetime) -> pl.DataFrame:
    return build_recommendation_transitions(
        events.lazy(), RecommendationSpec(), sessions_from=DAY, sessions_to=DAY,
        data_end=data_end).collect()


def test_features_actions_rewards_match_the_simulator_exactly():
    log, events = _simulated()
    t = _build(events, dt.datetime(2026, 10, 3, tzinfo=dt.UTC))
    t = t.with_columns(s=pl.col("episode_id").str.slice(9).cast(pl.Int64)).sort("s", "step")
    spec = RecommendationSpec()
    np.testing.assert_array_equal(t.select(spec.feature_columns).to_numpy(), log.observation)
    np.testing.assert_array_equal(t["action"].to_numpy(), log.action)
    np.testing.assert_allclose(t["reward"].to_numpy(), log.reward)
    np.testing.assert_allclose(t["behavior_prob"].to_numpy(), log.behavior_prob)
    np.testing.assert_array_equal(t["terminal"].to_numpy(), log.terminal)
    assert not t["timeout"].any()


def test_next_state_is_the_following_decision_and_zero_at_the_end():
    _, events = _simulated(50)
    t = _build(events, dt.datetime(2026, 10, 3, tzinfo=dt.UTC)).sort("episode_id", "step")
    spec = RecommendationSpec()
    f = t.select(spec.feature_columns).to_numpy()
    nf = t.select([f"next_{c}" for c in spec.feature_columns]).to_numpy()
    same = (t["episode_id"].to_numpy()[1:] == t["episode_id"].to_numpy()[:-1])
    np.testing.assert_array_equal(nf[:-1][same], f[1:][same])
    assert np.all(nf[t["terminal"].to_numpy()] == 0)


def test_sessions_cut_by_the_end_of_data_are_timeouts_not_terminals():
    _, events = _simulated(300)
    # pretend the data ends at 12:00: sessions still active then are not known to be over
    cut = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)
    t = _build(events.filter(pl.col("event_ts") < cut), cut)
    ends = t.group_by("episode_id").agg(pl.col("terminal").sum(), pl.col("timeout").sum())
    assert (ends["terminal"] + ends["timeout"] == 1).all()
    assert t["timeout"].sum() > 0


def test_sessions_crossing_midnight_are_built_whole():
    log, events = _simulated(3000)
    t = _build(events, dt.datetime(2026, 10, 3, tzinfo=dt.UTC))
    crossing = events.group_by("session_id").agg(d=pl.col("event_ts").dt.date().n_unique())
    crossing_ids = crossing.filter(pl.col("d") > 1)["session_id"]
    assert crossing_ids.len() > 0
    per = t.filter(pl.col("episode_id").is_in(crossing_ids.implode())).group_by("episode_id").agg(
        n=pl.len(), term=pl.col("terminal").any())
    assert per["term"].all()
    assert t.height == log.action.shape[0]


def test_mdp_dataset_keeps_episode_boundaries():
    log, events = _simulated(200)
    t = _build(events, dt.datetime(2026, 10, 3, tzinfo=dt.UTC))
    arrays = decision_arrays(t, RecommendationSpec().feature_columns)
    ds = to_mdp_dataset(arrays, 6)
    assert len(ds.episodes) == 200
    assert sum(len(e.rewards) for e in ds.episodes) == log.action.shape[0]


def test_broken_episodes_are_refused():
    _, events = _simulated(20)
    t = _build(events, dt.datetime(2026, 10, 3, tzinfo=dt.UTC))
    broken = t.with_columns(terminal=pl.lit(False), timeout=pl.lit(False))
    with pytest.raises(ValueError, match="terminal/timeout"):
        decision_arrays(broken, RecommendationSpec().feature_columns)


def test_naive_data_end_is_rejected():
    _, events = _simulated(5)
    with pytest.raises(ValueError, match="timezone"):
        _build(events, dt.datetime(2026, 10, 3))


def test_a_day_does_not_claim_the_tail_of_yesterdays_sessions(landing_paths):
    from offline_rl.data.schemas import CLICKSTREAM
    from offline_rl.pipeline import build_transitions_partition, ingest_partition

    day0, day1 = DAY, DAY + dt.timedelta(days=1)
    for d in (day0, day1):
        ingest_partition(landing_paths, CLICKSTREAM, d)
    first = build_transitions_partition(landing_paths, "recommendation", day0)
    second = build_transitions_partition(landing_paths, "recommendation", day1)
    assert set(first["episode_id"]).isdisjoint(set(second["episode_id"]))
    assert (second["episode_id"].str.slice(0, 8) == day1.strftime("%Y%m%d")).all()


def test_a_day_built_in_shares_equals_the_day_built_at_once(landing_paths, monkeypatch):
    from offline_rl import pipeline
    from offline_rl.data.schemas import CLICKSTREAM
    from offline_rl.data.warehouse import Warehouse

    for d in (DAY, DAY + dt.timedelta(days=1)):
        pipeline.ingest_partition(landing_paths, CLICKSTREAM, d)
    whole = pipeline.build_transitions_partition(landing_paths, "recommendation", DAY)
    monkeypatch.setattr(pipeline, "TRANSITIONS_SHARE_ROWS", 1500)  # about 8,000 raw rows
    shared = pipeline.build_transitions_partition(landing_paths, "recommendation", DAY)
    assert whole.height > 1000
    assert shared.equals(whole)  # the same rows in the same order, whatever the shares
    stored = Warehouse(landing_paths.warehouse).read_partitions(
        "recommendation_transitions", DAY, DAY)
    assert stored.height == whole.height


def test_a_missing_table_or_day_is_named(landing_paths):
    from offline_rl import pipeline
    from offline_rl.data.schemas import CLICKSTREAM

    with pytest.raises(ValueError, match="raw_clickstream does not exist; ingest clickstream"):
        pipeline.build_transitions_partition(landing_paths, "recommendation", DAY)
    pipeline.ingest_partition(landing_paths, CLICKSTREAM, DAY)
    later = DAY + dt.timedelta(days=1)
    with pytest.raises(ValueError, match=f"raw_clickstream has no rows for {later}"):
        pipeline.build_transitions_partition(landing_paths, "recommendation", later)
