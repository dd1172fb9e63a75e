"""Ground truth by rollouts: common random numbers, stochastic policies, paired precision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from offline_rl.shop import simulator_for
from offline_rl.simulator.base import (
    BEHAVIOR,
    StochasticPolicy,
    rollout_streams,
    sample_actions,
    true_value,
    true_values,
)
from offline_rl.simulator.rollouts import behavior_rollouts


@dataclass
class _ToyState:
    x: np.ndarray
    t: np.ndarray
    done: np.ndarray


@dataclass(frozen=True)
class _ToyStep:
    reward: np.ndarray
    done: np.ndarray


class ToySimulator:
    """Episodes of up to ``horizon`` steps; each step draws one uniform ``u`` per row whatever
    the action, earns ``u + action`` and ends the episode when ``u < 0.2``. Action 2 is masked
    at the first step; the behaviour policy's probabilities depend on the observation only."""

    name = "toy"
    n_actions = 3
    observation_size = 2
    feature_names = ["t", "x"]
    horizon = 6

    def reset(self, n, rng):
        return _ToyState(rng.random(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool))

    def observe(self, s):
        return np.c_[s.t, s.x].astype(np.float32)

    @staticmethod
    def probs_of(obs):
        x = obs[:, 1].astype(np.float64)
        w = np.c_[x, 1.0 - x, np.where(obs[:, 0] > 0, 0.5, 0.0)]
        return w / w.sum(axis=1, keepdims=True)

    def behavior_probs(self, s):
        return self.probs_of(self.observe(s))

    def action_mask(self, s):
        mask = np.ones((s.t.shape[0], self.n_actions), dtype=bool)
        mask[:, 2] = s.t > 0
        return mask

    def step(self, s, action, rng):
        u = rng.random(s.t.shape[0])
        live = ~s.done
        reward = np.where(live, u + action, 0.0)
        s.t = s.t + live
        done = ~live | (u < 0.2) | (s.t >= self.horizon)
        s.done = done.copy()
        return _ToyStep(reward=reward, done=done)


def zeros(obs):
    return np.zeros(obs.shape[0], dtype=np.int64)


def test_behaviour_and_a_deterministic_policy_see_the_same_dynamics_draws():
    # rewards are u + action with the same u whatever was chosen, so on common random numbers
    # behaviour minus "always 0" is exactly the mean over episodes of the behaviour's actions
    sim = ToySimulator()
    behaviour = true_value(sim, BEHAVIOR, episodes=5000, seed=7)
    always_zero = true_value(sim, zeros, episodes=5000, seed=7)
    logged = behavior_rollouts(sim, 5000, seed=7)  # the same episodes as the behaviour's truth
    assert behaviour.mean == pytest.approx(np.bincount(logged.episode, logged.rewards).mean(),
                                           rel=1e-6)
    actions = np.bincount(logged.episode, logged.actions).mean()
    assert behaviour.mean - always_zero.mean == pytest.approx(actions, rel=1e-9)
    assert behaviour.mean_length == always_zero.mean_length


def test_a_stochastic_policy_is_sampled_like_the_behaviour_and_respects_masks():
    sim = ToySimulator()
    same = StochasticPolicy(ToySimulator.probs_of)
    assert true_value(sim, same, episodes=3000, seed=2) == true_value(sim, BEHAVIOR,
                                                                      episodes=3000, seed=2)
    # one-hot probabilities are the deterministic policy
    one_hot = StochasticPolicy(lambda obs: np.eye(3)[zeros(obs)])
    assert true_value(sim, one_hot, episodes=3000, seed=2) == true_value(sim, zeros,
                                                                         episodes=3000, seed=2)
    # value of fixed probabilities p: E[length] * (E[u] + sum_a a p(a)); on common random
    # numbers its difference to "always 0" is the sampled actions' sum alone
    p = np.array([0.5, 0.3, 0.2])

    def fixed(obs):
        first = obs[:, :1] == 0
        return np.where(first, [0.5, 0.5, 0.0], p)

    mixed = true_value(sim, StochasticPolicy(fixed), episodes=40_000, seed=3)
    base = true_value(sim, zeros, episodes=40_000, seed=3)
    length = base.mean_length
    expected = 0.5 + (length - 1) * (p @ np.arange(3))
    assert mixed.mean_length == length
    assert abs(mixed.mean - base.mean - expected) < 4 * mixed.stderr
    with pytest.raises(ValueError, match="masks out"):
        true_value(sim, StochasticPolicy(lambda obs: np.full((obs.shape[0], 3), 1 / 3)),
                   episodes=100)
    with pytest.raises(ValueError, match="sum to"):
        true_value(sim, StochasticPolicy(lambda obs: np.tile([0.5, 0.4, 0.0],
                                                             (obs.shape[0], 1))), episodes=100)
    with pytest.raises(ValueError, match="shape"):
        true_value(sim, StochasticPolicy(lambda obs: np.ones((obs.shape[0], 2)) / 2),
                   episodes=100)
    with pytest.raises(ValueError, match="negative or non-finite"):
        true_value(sim, StochasticPolicy(lambda obs: np.tile([1.5, -0.5, 0.0],
                                                             (obs.shape[0], 1))), episodes=100)


def test_sampling_never_draws_an_action_of_probability_zero():
    rng = np.random.default_rng(0)
    probs = np.tile([0.0, 0.3, 0.0, 0.7 - 1e-12, 0.0], (200_000, 1))
    draws = sample_actions(probs, rng)
    assert set(np.unique(draws)) == {1, 3}
    assert abs((draws == 1).mean() - 0.3) < 0.005
    # a uniform number of exactly 0 or just below 1 still lands on a positive probability
    class Fixed:
        def __init__(self, u):
            self.u = u

        def random(self, n):
            return np.full(n, self.u)

    assert sample_actions(probs[:1], Fixed(0.0))[0] == 1
    assert sample_actions(probs[:1], Fixed(np.nextafter(1.0, 0.0)))[0] == 3


def test_epsilon_greedy_over_a_masked_domain():
    from offline_rl.simulator.inventory import MaskedInventorySimulator, heuristic_policy

    sim = MaskedInventorySimulator(simulator_for("inventory"))
    greedy = heuristic_policy(sim)
    allowed = slice(sim.observation_size - sim.n_actions, sim.observation_size)

    def epsilon_greedy(epsilon):
        def probs(obs):
            mask = obs[:, allowed].astype(np.float64)
            out = epsilon * mask / mask.sum(axis=1, keepdims=True)
            out[np.arange(obs.shape[0]), greedy(obs)] += 1.0 - epsilon
            return out
        return StochasticPolicy(probs)

    assert true_value(sim, epsilon_greedy(0.0), episodes=500, seed=1) == true_value(
        sim, greedy, episodes=500, seed=1)
    truth = true_values(sim, {"behavior": BEHAVIOR, "greedy": greedy,
                              "eps": epsilon_greedy(0.2)}, reference="greedy",
                        episodes=4000, seed=1)
    assert np.isfinite(truth.values["eps"].mean)
    # exploring costs the base-stock policy some of its lead over the behaviour policy
    assert truth.difference["eps"] < 0 < truth.difference["greedy"] - truth.difference["behavior"]


def test_true_values_pair_every_policy_on_the_same_episodes():
    from offline_rl.simulator.cart import heuristic_policy

    sim = simulator_for("cart")
    policies = {"behavior": BEHAVIOR, "heuristic": heuristic_policy(sim)}
    truth = true_values(sim, policies, reference="behavior", episodes=5000, seed=4)
    assert truth.episodes == 5000 and truth.target_met is None
    for name, policy in policies.items():  # the first batch is true_value's rollouts
        assert truth.values[name] == true_value(sim, policy, episodes=5000, seed=4)
    gap = truth.values["heuristic"].mean - truth.values["behavior"].mean
    assert truth.difference["heuristic"] == pytest.approx(gap)
    assert truth.difference["behavior"] == 0.0 and truth.difference_stderr["behavior"] == 0.0
    # common random numbers: the paired difference is far more precise than two independent
    # values' (same customers, same dynamics draws)
    unpaired = np.hypot(truth.values["heuristic"].stderr, truth.values["behavior"].stderr)
    assert truth.difference_stderr["heuristic"] < 0.75 * unpaired
    with pytest.raises(ValueError, match="reference"):
        true_values(sim, policies, reference="nope", episodes=100)


def test_true_values_add_rollouts_until_the_difference_is_precise_enough():
    from offline_rl.simulator.cart import heuristic_policy

    sim = simulator_for("cart")
    policies = {"behavior": BEHAVIOR, "heuristic": heuristic_policy(sim)}
    precise = true_values(sim, policies, reference="behavior", episodes=5000, seed=5,
                          target_relative_se=0.01)
    assert precise.target_met and precise.episodes > 5000
    assert precise.relative_stderr("heuristic") <= 0.01
    assert precise.values["heuristic"].episodes == precise.episodes
    capped = true_values(sim, policies, reference="behavior", episodes=2000, seed=5,
                         target_relative_se=0.001, max_episodes=6000)
    assert capped.target_met is False and capped.episodes == 6000
    assert capped.relative_stderr("heuristic") > 0.001
    # the later batches draw other episodes than the first
    first, second = rollout_streams(5, 0), rollout_streams(5, 1)
    assert first[0].random() != second[0].random()
    assert first[1].random() != rollout_streams(5, 0)[0].random()
