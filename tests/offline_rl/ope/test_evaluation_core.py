"""Tests of the evaluation core's additions for ``offline-rl ope``: logs without features and
full behaviour probabilities (``offline_rl.ope.evaluate.evaluate_target``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from offline_rl.data.arrays import DecisionArrays
from offline_rl.ope.evaluate import (
    NO_FEATURES,
    OPEConfig,
    StochasticTarget,
    evaluate_policy,
    evaluate_target,
)

CONFIG = OPEConfig(n_bootstrap=50, fqe_steps=100, fqe_refits=2, fqe_hidden_units=(8,))


def three_step_logs(n: int = 150, seed: int = 0) -> DecisionArrays:
    """``n`` episodes of three decisions; the logging policy takes action 1 with probability
    0.7 when the first feature is positive, else 0.3; reward 1 when the action is 1 exactly
    when the feature is positive."""
    rng = np.random.default_rng(seed)
    rows = 3 * n
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    p1 = np.where(x[:, 0] > 0, 0.7, 0.3)
    action = (rng.random(rows) < p1).astype(np.int64)
    reward = (action == (x[:, 0] > 0)).astype(np.float32)
    last = np.tile([0.0, 0.0, 1.0], n).astype(np.float32)
    return DecisionArrays(observations=np.asfortranarray(x), actions=action, rewards=reward,
                          terminals=last, timeouts=np.zeros(rows, dtype=np.float32),
                          behavior_prob=np.where(action == 1, p1, 1 - p1),
                          episode=np.repeat(np.arange(n), 3), step=np.tile([0, 1, 2], n))


class SignPolicy:
    def predict(self, observations: np.ndarray) -> np.ndarray:
        return (observations[:, 0] > 0).astype(np.int64)


def test_evaluate_policy_is_the_core():
    arrays = three_step_logs()
    via_policy = evaluate_policy("p", SignPolicy(), arrays, None, CONFIG, n_actions=2)
    via_core = evaluate_target("p", SignPolicy(), arrays, CONFIG, n_actions=2)
    assert via_policy == via_core


def test_without_features_the_model_is_left_out_and_the_rest_is_unchanged():
    arrays = three_step_logs()
    actions = SignPolicy().predict(arrays.observations)
    bare = dataclasses.replace(arrays, observations=np.empty((arrays.actions.shape[0], 0)))

    class Fixed:  # the same actions, without features to compute them from
        def predict(self, observations: np.ndarray) -> np.ndarray:
            return actions

    full = evaluate_target("p", SignPolicy(), arrays, CONFIG, n_actions=2)
    without = evaluate_target("p", Fixed(), bare, CONFIG, n_actions=2)
    assert set(full.estimates) == {"ipw", "snipw", "pdis", "snpdis", "dm", "dr", "sndr"}
    assert set(without.estimates) == {"ipw", "snipw", "pdis", "snpdis"}
    assert {k: full.estimates[k] for k in without.estimates} == without.estimates
    assert without.diagnostics == full.diagnostics
    assert without.extra["model"] == NO_FEATURES and "fqe_iterations" not in without.extra
    # a stochastic target without features too
    probs = np.where(actions[:, None] == 1, [0.1, 0.9], [0.9, 0.1])
    stochastic = evaluate_target("s", StochasticTarget(lambda _: probs), bare, CONFIG)
    assert set(stochastic.estimates) == {"ipw", "snipw", "pdis", "snpdis"}
    w = probs[np.arange(probs.shape[0]), arrays.actions] / arrays.behavior_prob
    cumulative = np.cumprod(w.reshape(-1, 3), axis=1).reshape(-1)
    pdis = float((cumulative * arrays.rewards).reshape(-1, 3).sum(axis=1).mean())
    assert stochastic.estimates["pdis"].value == pytest.approx(pdis)


def test_full_behaviour_probabilities_give_the_exact_rare_action_rate():
    arrays = three_step_logs()
    rows = arrays.actions.shape[0]
    p1 = np.where(arrays.observations[:, 0] > 0, 0.7, 0.3)
    behavior = np.column_stack([1 - p1, p1])
    always_one = StochasticTarget(lambda obs: np.tile([0.0, 1.0], (obs.shape[0], 1)))
    logged_only = evaluate_target("one", always_one, arrays, CONFIG)
    # with a behaviour that takes action 1 rarely (1%) where the feature is positive
    rare = behavior.copy()
    positive = arrays.observations[:, 0] > 0
    rare[positive] = [0.99, 0.01]
    rarely = dataclasses.replace(arrays, behavior_prob=rare[np.arange(rows), arrays.actions])
    full = evaluate_target("one", always_one, rarely, CONFIG, behavior_probs_all=rare)
    assert full.diagnostics.rare_action_rate == pytest.approx(positive.mean())
    assert logged_only.diagnostics.rare_action_rate == 0.0  # no logged probability below 2%
    # the estimates use the logged probabilities only
    same = evaluate_target("one", always_one, arrays, CONFIG, behavior_probs_all=behavior)
    assert same.estimates == logged_only.estimates


def test_cross_fitting_never_uses_a_rows_own_episode_for_its_model_value():
    from offline_rl.ope.evaluate import _fqe_target, _torch_fqe_fits, fold_of_episode

    def _torch_fqe(target, logs, n_actions, config):  # type: ignore[no-untyped-def]
        return _torch_fqe_fits([_fqe_target(target, n_actions, None)], logs, config)(0)

    logs = three_step_logs(n=60, seed=3)
    config = dataclasses.replace(CONFIG, fqe_folds=2)
    folds = fold_of_episode(60, config)
    assert folds is not None and np.bincount(folds).tolist() == [30, 30]
    target = SignPolicy().predict(logs.observations)
    q, _, details = _torch_fqe(target, logs, 2, config)
    assert details["fqe_folds"] == 2 and q.shape == (3, 180, 2)
    # flip the 0/1 rewards of one episode (the reward scale stays 1): the model values of
    # that episode's fold come from fits on the other fold only, so they do not move
    episode = int(np.flatnonzero(folds == 0)[0])
    changed = logs.rewards.copy()
    changed[logs.episode == episode] = 1.0 - changed[logs.episode == episode]
    q2, _, _ = _torch_fqe(target, dataclasses.replace(logs, rewards=changed), 2, config)
    own_fold = folds[logs.episode] == 0
    np.testing.assert_array_equal(q2[:, own_fold], q[:, own_fold])
    assert not np.array_equal(q2[:, ~own_fold], q[:, ~own_fold])  # the other fold's fits
    # without cross-fitting every fit sees every episode
    plain, _, details = _torch_fqe(target, logs, 2, CONFIG)
    assert details["fqe_folds"] == 1 and plain.shape == q.shape
    # too few episodes per fold: cross-fitting is off
    assert fold_of_episode(15, config) is None
