"""The nightly window: training on the freshest episodes, evaluation on whole ones."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from offline_rl.data.schemas import SOURCES
from offline_rl.data.warehouse import Warehouse
from offline_rl.domains import get_domain
from offline_rl.pipeline import (
    build_transitions_partition,
    episode_draws,
    ingest_partition,
    load_window,
    split_episodes,
)

START = dt.date(2026, 10, 1)  # the landing_paths fixture's first day
DAY2 = START + dt.timedelta(days=1)


@pytest.fixture
def two_days(landing_paths):
    for day in (START, DAY2):
        for schema in SOURCES.values():
            ingest_partition(landing_paths, schema, day)
    for day in (START, DAY2):
        build_transitions_partition(landing_paths, "recommendation", day)
    return landing_paths


def _episodes_by_day(paths, seed):
    frame = Warehouse(paths.warehouse).read_partitions("recommendation_transitions", START, DAY2)
    split = split_episodes(frame, 0.3, seed).unique("episode_id")
    return {(day, flag): part.height for (day, flag), part in
            split.group_by("partition_date", "is_eval")}


def test_evaluation_uses_whole_episodes_and_running_ones_train(two_days):
    domain = get_domain("recommendation")
    assert domain.lookahead_days == 1
    counts = _episodes_by_day(two_days, seed=3)
    total = sum(counts.values())
    # default: settle the domain's lookahead (1 day): only the first day's sessions, complete
    # once the second day is loaded, are evaluated; the second day's held-out share waits for
    # a later night and never trains
    window = load_window(two_days, domain, DAY2, 2, 0.3, 3)
    assert (window.eval_start, window.eval_end, window.settle_days) == (
        START - dt.timedelta(days=1), START, 1)
    assert window.eval_episodes == counts[(START, True)]
    assert window.train_episodes == counts[(START, False)] + counts[(DAY2, False)]
    assert total == window.train_episodes + counts[(START, True)] + counts[(DAY2, True)]
    # settle_days=0: every held-out episode of the window is evaluated
    window = load_window(two_days, domain, DAY2, 2, 0.3, 3, settle_days=0)
    assert window.eval_episodes == counts[(START, True)] + counts[(DAY2, True)]
    assert window.train_episodes == counts[(START, False)] + counts[(DAY2, False)]
    # a one-day training window: the evaluation window (the day before) still reads back
    window = load_window(two_days, domain, DAY2, 1, 0.3, 3)
    assert (window.start, window.eval_start, window.eval_end) == (DAY2, START, START)
    assert window.eval_episodes == counts[(START, True)]
    assert window.train_episodes == counts[(DAY2, False)]


def test_no_settled_episodes_is_a_clear_error(two_days):
    with pytest.raises(ValueError, match=r"no held-out episodes started between 2026-09-29 and "
                       r"2026-09-30: evaluation uses whole episodes.*settle_days"):
        load_window(two_days, "recommendation", DAY2, 2, 0.3, 0, settle_days=2)
    with pytest.raises(ValueError, match="settle_days: expected a number of days >= 0"):
        load_window(two_days, "recommendation", DAY2, 2, 0.3, 0, settle_days=-1)
    frame = Warehouse(two_days.warehouse).read_partitions("recommendation_transitions", START,
                                                          DAY2)
    assert frame.select(pl.col("partition_date").n_unique()).item() == 2



def test_a_limited_window_samples_whole_episodes_of_the_same_split(two_days):
    import numpy as np

    from offline_rl.pipeline import _sampled_episodes

    domain = get_domain("recommendation")
    whole = load_window(two_days, domain, DAY2, 2, 0.3, 3, settle_days=0)
    n_train, n_eval = whole.train.actions.size, whole.evaluation.actions.size
    # within both limits: exactly the unlimited window
    same = load_window(two_days, domain, DAY2, 2, 0.3, 3, settle_days=0,
                       max_train_rows=n_train, max_eval_rows=n_eval)
    for part in ("train", "evaluation"):
        a, b = getattr(whole, part), getattr(same, part)
        assert np.array_equal(a.observations, b.observations)
        assert np.array_equal(a.actions, b.actions) and np.array_equal(a.episode, b.episode)
    # over them: a share of whole episodes, each on its side of the unlimited window's split
    limits = {"max_train_rows": n_train // 4, "max_eval_rows": n_eval // 2}
    small = load_window(two_days, domain, DAY2, 2, 0.3, 3, settle_days=0, **limits)
    assert 0.6 * n_train / 4 < small.train.actions.size < 1.4 * n_train / 4
    assert 0.6 * n_eval / 2 < small.evaluation.actions.size < 1.4 * n_eval / 2
    assert (small.max_train_rows, small.max_eval_rows) == (n_train // 4, n_eval // 2)
    wh = Warehouse(two_days.warehouse)
    sizes = wh.episode_sizes("recommendation_transitions", START, DAY2)
    kept = _sampled_episodes(sizes, 0.3, 3, START, START, DAY2, n_train // 4, n_eval // 2)
    split = split_episodes(wh.read_partitions("recommendation_transitions", START, DAY2),
                           0.3, 3).unique("episode_id").select("episode_id", "is_eval")
    assert kept.join(split, on="episode_id").filter(
        pl.col("is_eval") != pl.col("is_eval_right")).is_empty()
    kept_sizes = kept.join(sizes, on="episode_id")
    # whole episodes: the window holds every decision of each kept episode
    assert small.evaluation.actions.size == kept_sizes.filter("is_eval")["n"].sum()
    assert small.train.actions.size == kept_sizes.filter(~pl.col("is_eval"))["n"].sum()
    assert (small.train_episodes, small.eval_episodes) == (
        kept_sizes.filter(~pl.col("is_eval")).height, kept_sizes.filter("is_eval").height)
    again = load_window(two_days, domain, DAY2, 2, 0.3, 3, settle_days=0, **limits)
    assert np.array_equal(again.train.observations, small.train.observations)  # seeded


def test_a_window_of_single_running_decisions_is_a_clear_error(tmp_path, monkeypatch):
    import numpy as np

    from offline_rl import pipeline
    from offline_rl.algos.config import TrainingConfig
    from offline_rl.data.arrays import DecisionArrays
    from offline_rl.paths import DataPaths

    n = 4  # four episodes of one decision each, all still running (timeouts)
    arrays = DecisionArrays(
        observations=np.zeros((n, len(get_domain("inventory").feature_names)), np.float32),
        actions=np.zeros(n, np.int64), rewards=np.ones(n, np.float32),
        terminals=np.zeros(n, np.float32), timeouts=np.ones(n, np.float32),
        behavior_prob=np.full(n, 0.5), episode=np.arange(n), step=np.zeros(n, np.int64),
        extras={})
    window = pipeline.WindowData(start=START, end=DAY2, train=arrays, evaluation=arrays,
                                 train_episodes=n, eval_episodes=n, eval_start=START,
                                 eval_end=DAY2, settle_days=0)
    monkeypatch.setattr(pipeline, "load_window", lambda *a, **k: window)
    with pytest.raises(ValueError, match=r"inventory: the training window 2026-10-01\.\.2026-10-02 "
                                         r"holds 4 episode\(s\) but no transition"):
        pipeline.train_candidates(DataPaths(tmp_path), "inventory", DAY2, ["bc"],
                                  TrainingConfig(n_steps=1), window_days=2, eval_fraction=0.3)


def test_an_episode_is_held_out_every_night_or_never():
    """The split is a function of the episode id and the seed alone: the same episode gets
    the same flag whatever else a night's window holds (no model trained on one night has
    seen an episode another night evaluates)."""
    import numpy as np

    ids = [f"session-{i:06d}" for i in range(4000)]
    night1 = pl.DataFrame({"episode_id": ids[:3000], "step": 0})
    night2 = pl.DataFrame({"episode_id": ["x-new-and-much-longer-id"] + ids[1000:],
                           "step": 0})
    flags1 = dict(split_episodes(night1, 0.3, 5).select("episode_id", "is_eval").iter_rows())
    flags2 = dict(split_episodes(night2, 0.3, 5).select("episode_id", "is_eval").iter_rows())
    assert all(flags1[i] == flags2[i] for i in ids[1000:3000])
    assert 0.27 < np.mean(list(flags1.values())) < 0.33
    other = dict(split_episodes(night1, 0.3, 6).select("episode_id", "is_eval").iter_rows())
    assert other != flags1  # another seed, another split
    # the draws: fixed numbers of the id's bytes (these values are the contract)
    draws = episode_draws(pl.Series(["s-1", "s-22", "abc", "s-1"]), 3)
    np.testing.assert_allclose(draws, [0.40380092, 0.15460044, 0.57842516, 0.40380092],
                               atol=1e-8)
    assert draws[0] == episode_draws(pl.Series(["s-1", "a-longer-id"]), 3)[0]
