"""Behaviour rollouts as decision arrays: well formed, and worth what the simulator says."""

from __future__ import annotations

import numpy as np
import pytest

from offline_rl.domains import domain_names
from offline_rl.shop import simulator_for
from offline_rl.simulator.base import true_value
from offline_rl.simulator.rollouts import behavior_rollouts


@pytest.mark.parametrize("domain", domain_names())
def test_rollouts_are_episodes_whose_mean_return_is_the_behaviour_value(domain):
    sim = simulator_for(domain)
    data = behavior_rollouts(sim, 3000, seed=4)
    n = len(data.actions)
    assert data.observations.shape == (n, sim.observation_size)
    assert ((data.behavior_prob > 0) & (data.behavior_prob <= 1)).all()
    assert data.episode.min() == 0 and np.unique(data.episode).size == 3000
    last = np.r_[data.episode[1:] != data.episode[:-1], True]
    assert (data.terminals == last).all() and data.timeouts.sum() == 0
    first = np.r_[True, last[:-1]]
    assert (data.step[first] == 0).all()
    returns = np.bincount(data.episode, weights=data.rewards)
    # the logged episodes are those the behaviour's truth with the same seed rolls out
    same = true_value(sim, "behavior", episodes=3000, seed=4)
    assert returns.mean() == pytest.approx(same.mean, rel=1e-5, abs=1e-6)
    truth = true_value(sim, "behavior", episodes=20_000, seed=9)
    se = np.hypot(returns.std(ddof=1) / np.sqrt(returns.size), truth.stderr)
    assert abs(returns.mean() - truth.mean) < 4 * se


def test_rollouts_are_reproducible():
    sim = simulator_for("cart")
    a, b = behavior_rollouts(sim, 200, seed=1), behavior_rollouts(sim, 200, seed=1)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    with pytest.raises(ValueError):
        behavior_rollouts(sim, 0, seed=1)
