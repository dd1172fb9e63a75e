"""The inventory domain: transitions from simulated raw partitions, checked against simulation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
import pytest

from offline_rl.domains.base import check_transitions
from offline_rl.domains.inventory import CONFIG, DOMAIN
from offline_rl.simulator import inventory
from offline_rl.simulator.base import true_value
from offline_rl.simulator.world import make_world

START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(3)]
MIDDLE = DAYS[1]
EVENTS_PER_DAY = 2000  # 10 SKU episodes a day
HORIZON = CONFIG.horizon
TIME_COLUMN = {"inventory_orders": "order_ts", "inventory_snapshots": "snapshot_ts"}


@pytest.fixture(scope="module")
def logs(recorder: Any) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Raw rows of the episodes starting on three days (with partition_date) and what the
    simulator saw at each of their decisions."""
    world, config = make_world(), inventory.SIMULATION.config
    frames: dict[str, list[pl.DataFrame]] = {name: [] for name in TIME_COLUMN}
    truth = []
    n_items = world.catalogue.n_items
    recorded = recorder(inventory.InventorySimulator, ("sku", "t"),  # it observes the mask too
                        lambda sim, s: inventory.MaskedInventorySimulator(sim).observe(s))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inventory, "InventorySimulator", recorded)
        for i, day in enumerate(DAYS):
            recorded.records = []
            out = inventory.generate_inventory(world, config, day, np.random.default_rng(i),
                                               EVENTS_PER_DAY)
            for name, frame in out.items():
                frames[name].append(frame)
            for r in recorded.records:
                truth.append(pl.DataFrame({
                    "episode_id": [f"{day:%Y%m%d}-i{k % n_items:03d}-l{k // n_items:02d}"
                                   for k in r["sku"]],
                    "step": pl.Series(r["t"], dtype=pl.Int32),
                    "obs": r["obs"],
                    "sim_action": r["action"],
                    "sim_reward": r["reward"],
                    "sim_done": r["done"],
                }))
    raw = {name: pl.concat(parts).with_columns(
        partition_date=pl.col(TIME_COLUMN[name]).dt.date()) for name, parts in frames.items()}
    return raw, pl.concat(truth)


def _build(raw: dict[str, pl.DataFrame], day: dt.date, loaded_to: dt.date) -> pl.DataFrame:
    """The day's transitions from the raw partitions the pipeline would read."""
    return DOMAIN.build_day(raw, day, loaded_to).collect()


def _full(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=HORIZON - 1)


def test_middle_day_meets_the_contract(logs):
    raw, _ = logs
    table = _build(raw, MIDDLE, _full(MIDDLE))
    assert check_transitions(table, DOMAIN) == []
    assert table.height == 10 * HORIZON
    assert (table["partition_date"] == MIDDLE).all()
    assert table.columns[:len(DOMAIN.schema)] == list(DOMAIN.schema)
    assert {"location_id", "sku_id"} <= set(table.columns)
    # masks are features: logged actions are allowed, and some orders were not
    masks = table.select(DOMAIN.feature_columns[-DOMAIN.n_actions:]).to_numpy()
    assert set(np.unique(masks)) == {0.0, 1.0} and (masks[:, 0] == 1.0).all()


def test_features_actions_rewards_equal_the_simulator(logs):
    raw, truth = logs
    table = _build(raw, MIDDLE, _full(MIDDLE)).sort("episode_id", "step")
    joined = table.join(truth, on=["episode_id", "step"], how="left", validate="1:1")
    assert joined["sim_action"].null_count() == 0
    obs = np.stack(joined["obs"].to_numpy())
    assert obs.shape[1] == len(DOMAIN.feature_names)
    np.testing.assert_allclose(joined.select(DOMAIN.feature_columns).to_numpy(), obs,
                               rtol=0, atol=1e-5)
    np.testing.assert_array_equal(joined["action"].to_numpy(), joined["sim_action"].to_numpy())
    np.testing.assert_allclose(joined["reward"].to_numpy(), joined["sim_reward"].to_numpy(),
                               rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(joined["terminal"].to_numpy(), joined["sim_done"].to_numpy())
    # the next state is the simulator's observation at the episode's next decision
    nxt = joined.with_columns(
        pl.col("obs").shift(-1).over("episode_id", order_by="step").alias("next_obs"))
    inner = nxt.filter(~pl.col("terminal"))
    np.testing.assert_allclose(inner.select(DOMAIN.next_feature_columns).to_numpy(),
                               np.stack(inner["next_obs"].to_numpy()), rtol=0, atol=1e-5)
    assert (nxt.filter("terminal").select(DOMAIN.next_feature_columns).to_numpy() == 0).all()


def test_multi_day_episodes_are_whole_and_claimed_once(logs):
    raw, _ = logs
    # an episode's rows fall on HORIZON different partitions
    spread = (raw["inventory_orders"].group_by("episode_id")
              .agg(days=pl.col("partition_date").n_unique()))
    assert (spread["days"] == HORIZON).all()
    tables = pl.concat([_build(raw, day, _full(DAYS[-1])) for day in DAYS])
    assert check_transitions(tables, DOMAIN) == []
    per_episode = tables.group_by("episode_id").agg(
        partitions=pl.col("partition_date").n_unique(), n=pl.len(),
        terminal=pl.col("terminal").sum(), start=pl.col("partition_date").first())
    assert per_episode.height == 30
    assert (per_episode["partitions"] == 1).all() and (per_episode["n"] == HORIZON).all()
    assert (per_episode["terminal"] == 1).all()
    # the episode id names its start day: the partition that claimed it
    assert (per_episode["episode_id"].str.slice(0, 8)
            == per_episode["start"].dt.strftime("%Y%m%d")).all()


def test_episodes_not_loaded_to_their_end_time_out(logs):
    raw, _ = logs
    table = _build(raw, MIDDLE, MIDDLE + dt.timedelta(days=3))
    assert check_transitions(table, DOMAIN) == []
    assert table.height == 10 * 4
    assert table["terminal"].sum() == 0
    ends = table.filter("timeout")
    assert ends.height == 10 and (ends["step"] == 3).all()
    assert (ends.select(DOMAIN.next_feature_columns).to_numpy() == 0).all()
    # a day with a single step is still an episode
    first_day = _build(raw, MIDDLE, MIDDLE)
    assert first_day.height == 10 and first_day["timeout"].all()


def test_a_missing_day_cuts_the_episode(logs):
    raw, _ = logs
    gap = MIDDLE + dt.timedelta(days=5)
    victim = raw["inventory_orders"].filter(
        (pl.col("partition_date") == MIDDLE) & (pl.col("day_index") == 0))["episode_id"].min()
    holed = {**raw, "inventory_snapshots": raw["inventory_snapshots"].filter(
        (pl.col("partition_date") != gap) | (pl.col("episode_id") != victim))}
    table = _build(holed, MIDDLE, _full(MIDDLE))
    assert check_transitions(table, DOMAIN) == []
    cut = table.filter(pl.col("episode_id") == victim)
    kept = table.filter(pl.col("episode_id") != victim)
    # days 0-4 remain; day 5 has no reward and later days no longer follow on
    assert cut["step"].to_list() == [0, 1, 2, 3, 4]
    assert cut["timeout"].to_list() == [False] * 4 + [True] and not cut["terminal"].any()
    assert kept.height == 9 * HORIZON and kept["terminal"].sum() == 9


def test_bad_rows_raise_naming_the_row(logs):
    raw, _ = logs
    orders = raw["inventory_orders"]
    # an order logged while the mask allowed only ordering nothing
    bad_id = orders.filter(pl.col("episode_id").str.starts_with(f"{MIDDLE:%Y%m%d}")
                           & (pl.col("action") > 0))["order_id"].min()
    forbidden = orders.with_columns(
        action_mask=pl.when(pl.col("order_id") == bad_id).then(1)
        .otherwise(pl.col("action_mask")))
    with pytest.raises(ValueError, match=f"order_id '{bad_id}': action_mask = 1"):
        _build({**raw, "inventory_orders": forbidden}, MIDDLE, _full(MIDDLE))
    longer = orders.with_columns(planning_days=pl.lit(HORIZON + 1, dtype=pl.Int32))
    with pytest.raises(ValueError, match=f"planning_days = {HORIZON + 1}"):
        _build({**raw, "inventory_orders": longer}, MIDDLE, _full(MIDDLE))
    snaps = raw["inventory_snapshots"]
    bad_snap = snaps.filter(pl.col("episode_id").str.starts_with(f"{MIDDLE:%Y%m%d}"))[
        "snapshot_id"].min()
    free = snaps.with_columns(unit_price=pl.when(pl.col("snapshot_id") == bad_snap).then(0.0)
                              .otherwise(pl.col("unit_price")))
    with pytest.raises(ValueError, match=f"snapshot_id '{bad_snap}': unit_price = 0.0"):
        _build({**raw, "inventory_snapshots": free}, MIDDLE, _full(MIDDLE))


def test_simulator_observes_the_mask_features():
    sim = DOMAIN.make_simulator("default")
    assert sim.feature_names == list(DOMAIN.feature_names)
    assert sim.observation_size == len(DOMAIN.feature_names) and sim.n_actions == DOMAIN.n_actions
    state = sim.reset(256, np.random.default_rng(0))
    obs = sim.observe(state)
    assert obs.dtype == np.float32 and obs.shape == (256, sim.observation_size)
    mask = obs[:, DOMAIN.mask_indices]
    np.testing.assert_array_equal(mask, sim.action_mask(state).astype(np.float32))
    assert 0 < mask.mean() < 1
    # a policy that reads the mask from its input is valued by rollouts; one that ignores it
    # is refused
    largest_allowed = lambda o: np.where(o[:, DOMAIN.mask_indices] > 0.5,  # noqa: E731
                                         np.arange(sim.n_actions), 0).max(axis=1)
    assert np.isfinite(true_value(sim, largest_allowed, episodes=200).mean)
    with pytest.raises(ValueError, match="masks out"):
        true_value(sim, lambda o: np.full(o.shape[0], sim.n_actions - 1), episodes=200)


def test_transitions_replay_their_own_logs(logs):
    """The table keeps what the demand replay reads, and replaying the logged orders through
    the bookkeeping reproduces the logs (the fidelity check inside ``prepare``)."""
    from offline_rl.data.arrays import decision_arrays

    raw, _ = logs
    table = _build(raw, MIDDLE, _full(MIDDLE))
    arrays = decision_arrays(table, DOMAIN.feature_columns, DOMAIN.replay_columns)
    assert set(arrays.extras) == set(DOMAIN.replay_columns)
    prepared = DOMAIN.replay.prepare(arrays)
    assert prepared.episodes == 10
    np.testing.assert_allclose(prepared.rates, (CONFIG.holding_rate, CONFIG.order_fixed_cost,
                                                CONFIG.order_unit_cost,
                                                CONFIG.stockout_penalty_rate), rtol=1e-6)
    logged = np.bincount(arrays.episode, weights=arrays.rewards.astype(np.float64))
    by_episode = arrays.actions.reshape(10, HORIZON)  # sorted by episode, then day
    replayed = DOMAIN.replay.replay(prepared, lambda t, _obs: by_episode[:, t])
    np.testing.assert_allclose(replayed.reward.sum(axis=1), logged, rtol=1e-5)
