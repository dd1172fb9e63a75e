"""Demand replay of the inventory domain: the fidelity check, and values against truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from offline_rl.data.arrays import DecisionArrays
from offline_rl.domains.inventory import CONFIG, DOMAIN, FEATURES
from offline_rl.ope.replay import ReplayUnavailable, prepare_replay
from offline_rl.simulator.base import true_value
from offline_rl.simulator.rollouts import behavior_rollouts

REPLAY = DOMAIN.replay
NEVER = lambda obs: np.zeros(obs.shape[0], dtype=np.int64)  # noqa: E731


@pytest.fixture(scope="module")
def sim():
    return DOMAIN.make_simulator("default")


@pytest.fixture(scope="module")
def arrays(sim) -> DecisionArrays:
    return behavior_rollouts(sim, 400, seed=3)


def _tamper(arrays: DecisionArrays, column: str, row: int, delta: float) -> DecisionArrays:
    values = arrays.extras[column].copy()
    values[row] += delta
    return dataclasses.replace(arrays, extras={**arrays.extras, column: values})


def test_rollouts_log_the_raw_fields_and_the_rates_are_the_shops(arrays):
    assert set(arrays.extras) >= set(DOMAIN.replay_columns)
    logs = REPLAY.prepare(arrays)
    assert logs.episodes == 400 and logs.valid.all()
    np.testing.assert_allclose(logs.rates, (CONFIG.holding_rate, CONFIG.order_fixed_cost,
                                            CONFIG.order_unit_cost,
                                            CONFIG.stockout_penalty_rate), rtol=1e-6)
    assert logs.fit_error < 1e-2  # float32 rewards
    assert (logs.exo_arrivals == 0).all() and (logs.exo_pending0 == 0).all()


def test_replaying_the_logged_orders_gives_the_logged_returns(arrays):
    logs = REPLAY.prepare(arrays)
    actions = arrays.actions.reshape(400, CONFIG.horizon)
    replayed = REPLAY.replay(logs, lambda t, _obs: actions[:, t])
    logged = np.bincount(arrays.episode, weights=arrays.rewards.astype(np.float64))
    np.testing.assert_allclose(replayed.reward.sum(axis=1), logged, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(replayed.stock_start.reshape(-1),
                                  arrays.extras["stock_on_hand"])


@pytest.mark.parametrize(("column", "field"), [
    ("stock_end", "stock_end"), ("quantity", "quantity"), ("demand", "(stock_end|reward)"),
])
def test_logs_the_rules_do_not_reproduce_are_refused_naming_the_field(arrays, column, field):
    # an order on an episode's last day without a stockout (so the tampered demand is all
    # sold): a change there reaches no later day and no fitted cost rate
    last = (arrays.step == CONFIG.horizon - 1) & (arrays.extras["quantity"] > 0) \
        & (arrays.extras["demand"] + 3 <= arrays.extras["stock_on_hand"])
    row = int(np.flatnonzero(last)[0])
    day = CONFIG.horizon - 1
    with pytest.raises(ReplayUnavailable,
                       match=rf"episode {arrays.episode[row]}, day {day}.*: {field} logged"):
        REPLAY.prepare(_tamper(arrays, column, row, 3.0))


def test_unexplained_arrivals_moving_sku_facts_and_missing_columns_are_refused(arrays):
    with pytest.raises(ReplayUnavailable, match="episode 0 day 3: unit_price .* differs"):
        REPLAY.prepare(_tamper(arrays, "unit_price", 3, 1.0))
    row = int(np.flatnonzero(arrays.step == 2)[0])
    with pytest.raises(ReplayUnavailable, match="not explained by the pipeline"):
        REPLAY.prepare(_tamper(arrays, "stock_on_hand", row, 5.0))
    old = dataclasses.replace(arrays, extras={})
    with pytest.raises(ReplayUnavailable, match="rebuild the inventory transitions"):
        REPLAY.prepare(old)
    unset = _tamper(arrays, "demand_7d_mean", 7, np.nan)
    with pytest.raises(ReplayUnavailable, match="not finite, e.g. at episode 1 day 0"):
        REPLAY.prepare(unset)
    data = prepare_replay(REPLAY, old)
    assert not data.available and "lack" in data.reason
    with pytest.raises(ValueError, match="numbered 0 .. n - 1"):
        REPLAY.prepare(arrays.select(arrays.episode % 2 == 1))


class _PendingAtStart:
    """The simulator with 3 days of demand already on order at each episode's start, due
    on day 2: orders placed before the episode, which the replay reads from the logs."""

    def __init__(self, sim):
        self._sim = sim

    def reset(self, n, rng):
        state = self._sim.reset(n, rng)
        state.pipe[:, 1] += np.ceil(3 * self._sim.mean7(state)).astype(np.int64)
        return state

    def __getattr__(self, name):
        return getattr(self._sim, name)


def test_orders_placed_before_the_episode_arrive_in_the_replay(sim):
    pending = _PendingAtStart(sim)
    arrays = behavior_rollouts(pending, 300, seed=4)
    logs = REPLAY.prepare(arrays)  # reproduces positions and stock with the early arrivals
    assert (logs.exo_pending0 > 0).all()
    np.testing.assert_allclose(logs.exo_arrivals[:, 2], logs.exo_pending0)
    replayed = REPLAY.returns(logs, NEVER).mean()
    truth = true_value(pending, NEVER, episodes=4000, seed=11)
    assert abs(replayed - truth.mean) < 4 * np.hypot(
        REPLAY.returns(logs, NEVER).std() / np.sqrt(300), truth.stderr)


def test_replayed_values_match_the_true_values(sim):
    """The policy that never orders, which the logs never follow to the empty shelf (FQE
    over-values it by 40%), and a base-stock rule: within sampling error of the truth."""
    from offline_rl.simulator.inventory import heuristic_policy

    arrays = behavior_rollouts(sim, 2000, seed=5)
    logs = REPLAY.prepare(arrays)
    for policy in (NEVER, heuristic_policy(sim)):
        returns = REPLAY.returns(logs, policy)
        truth = true_value(sim, policy, episodes=4000, seed=12)
        se = np.hypot(returns.std() / np.sqrt(returns.shape[0]), truth.stderr)
        assert abs(returns.mean() - truth.mean) < 4 * se


def test_policy_sees_the_replayed_state(arrays):
    logs = REPLAY.prepare(arrays)
    seen = []

    def policy(obs):
        seen.append(obs.copy())
        return NEVER(obs)

    REPLAY.returns(logs, policy)
    assert len(seen) == CONFIG.horizon and seen[0].dtype == np.float32
    # day 0 is the logged state; afterwards nothing is on order, and ordering nothing is
    # always allowed while the other sizes depend on the replayed headroom
    np.testing.assert_allclose(seen[0], arrays.observations[arrays.step == 0], atol=1e-6)
    on_order = FEATURES.index("on_order_weeks")
    assert all((s[:, on_order] == 0).all() for s in seen)
    assert all((s[:, FEATURES.index("allowed_order_0w")] == 1).all() for s in seen)
    logged_day3 = arrays.observations[arrays.step == 3]
    assert not np.allclose(seen[3][:, FEATURES.index("stock_weeks")],
                           logged_day3[:, FEATURES.index("stock_weeks")])
    with pytest.raises(ValueError, match="outside"):
        REPLAY.returns(logs, lambda obs: np.full(obs.shape[0], 9))


def test_another_shops_cost_accounting_is_read_from_its_logs():
    """The rates are fitted from the logged rewards, so a shop with other costs (dearer
    holding and freight, a smaller stock-out penalty) is replayed with its own."""
    from offline_rl.simulator.inventory import (
        InventoryConfig,
        InventorySimulator,
        MaskedInventorySimulator,
    )
    from offline_rl.simulator.world import make_world

    costs = InventoryConfig(holding_rate=0.05, order_fixed_cost=60.0, order_unit_cost=1.1,
                            stockout_penalty_rate=0.02)
    other = MaskedInventorySimulator(InventorySimulator(make_world(), costs))
    arrays = behavior_rollouts(other, 300, seed=6)
    logs = REPLAY.prepare(arrays)
    np.testing.assert_allclose(logs.rates, (0.05, 60.0, 1.1, 0.02), rtol=1e-6)
    returns = REPLAY.returns(logs, NEVER)
    truth = true_value(other, NEVER, episodes=4000, seed=13)
    se = np.hypot(returns.std() / np.sqrt(returns.shape[0]), truth.stderr)
    assert abs(returns.mean() - truth.mean) < 4 * se
