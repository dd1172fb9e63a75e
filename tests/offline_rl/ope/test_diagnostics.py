"""Tests of the OPE diagnostics on hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offline_rl.ope.diagnostics import (
    Diagnostics,
    compute_diagnostics,
    estimator_disagreement,
    kish_ess,
)
from offline_rl.ope.estimators import Estimate, LoggedData


def one_step(behavior: list[float], target: list[float]) -> LoggedData:
    n = len(behavior)
    return LoggedData(episode=np.arange(n), step=np.zeros(n, dtype=int), reward=np.ones(n),
                      behavior_prob=np.array(behavior), target_prob=np.array(target))


def test_equal_weights_give_full_effective_sample_size():
    data = one_step([0.5] * 4, [0.5] * 4)  # every weight 1
    diag = compute_diagnostics(data)
    assert diag.ess == pytest.approx(4.0)
    assert diag.ess_fraction == pytest.approx(1.0)
    assert diag.per_decision_ess_fraction == pytest.approx(1.0)
    assert diag.max_weight_share == pytest.approx(0.25)


def test_hand_computed_weight_diagnostics():
    # Episode 0: ratios 2, 0.5 -> trajectory weight 1; episode 1: ratio 3; episode 2: ratio 0.
    data = LoggedData(
        episode=np.array([0, 0, 1, 2]), step=np.array([0, 1, 0, 0]), reward=np.zeros(4),
        behavior_prob=np.array([0.5, 0.5, 0.25, 0.5]),
        target_prob=np.array([1.0, 0.25, 0.75, 0.0]),
    )
    diag = compute_diagnostics(data)
    # Trajectory weights (1, 3, 0): ESS = 4^2 / (1 + 9) = 1.6, max share 3/4.
    assert diag.ess == pytest.approx(1.6)
    assert diag.ess_fraction == pytest.approx(1.6 / 3)
    assert diag.max_weight_share == pytest.approx(0.75)
    # Per-decision ratios (2, 0.5, 3, 0): (5.5)^2 / (4 + 0.25 + 9) / 4 rows.
    assert diag.per_decision_ess_fraction == pytest.approx(5.5**2 / 13.25 / 4)
    # Logged rows with pi > 0.5: rows 0 and 2.
    assert diag.action_match_rate == pytest.approx(0.5)


def test_one_dominant_weight_and_no_support():
    assert kish_ess(np.array([0.0, 0.0, 5.0])) == pytest.approx(1.0)
    assert kish_ess(np.zeros(3)) == 0.0
    diag = compute_diagnostics(one_step([0.5, 0.5], [0.0, 0.0]))
    assert diag.ess == 0.0 and math.isnan(diag.max_weight_share)


def test_weights_that_are_not_finite_leave_the_weight_diagnostics_undefined():
    assert math.isnan(kish_ess(np.array([1.0, float("nan")])))
    assert math.isnan(kish_ess(np.array([1.0, float("inf")])))
    # finite weights whose squares overflow: the ESS is still defined
    assert kish_ess(np.array([1e200, 1e200, 0.0])) == pytest.approx(2.0)
    # 400 steps of ratio 10: every trajectory weight overflows to inf
    n, steps = 2, 400
    data = LoggedData(episode=np.repeat(np.arange(n), steps), step=np.tile(np.arange(steps), n),
                      reward=np.ones(n * steps), behavior_prob=np.full(n * steps, 0.1),
                      target_prob=np.ones(n * steps))
    with np.errstate(over="ignore"):
        diag = compute_diagnostics(data)
    assert math.isnan(diag.ess) and math.isnan(diag.max_weight_share)
    assert diag.per_decision_ess_fraction == pytest.approx(1.0)
    # 300 steps of ratio 10 in one episode, 1 in the other: finite weights, shares defined
    data = LoggedData(episode=np.repeat([0, 1], 300), step=np.tile(np.arange(300), 2),
                      reward=np.ones(600), behavior_prob=np.r_[np.full(300, 0.1), np.ones(300)],
                      target_prob=np.ones(600))
    diag = compute_diagnostics(data)
    assert diag.max_weight_share == pytest.approx(1.0) and diag.ess == pytest.approx(1.0)


def test_rare_action_rate_and_action_match_with_full_matrices():
    # 4 logged states, 3 actions.
    target = np.array([
        [0.9, 0.05, 0.05],  # prefers a0, b(a0) = 0.01 < 0.02 -> rare
        [0.1, 0.8, 0.1],    # prefers a1, b(a1) = 0.5        -> fine
        [0.4, 0.3, 0.3],    # argmax a0 (< 0.5), b(a0) = 0.01 -> rare
        [0.5, 0.5, 0.0],    # a0 and a1 both >= 0.5; b(a1) = 0.015 -> rare
    ])
    behavior = np.array([
        [0.01, 0.49, 0.5],
        [0.25, 0.5, 0.25],
        [0.01, 0.5, 0.49],
        [0.5, 0.015, 0.485],
    ])
    action = np.array([1, 1, 2, 0])  # greedy actions are 0, 1, 0, 0 -> matches rows 1, 3
    rows = np.arange(4)
    data = LoggedData(episode=rows, step=np.zeros(4, dtype=int), reward=np.zeros(4),
                      behavior_prob=behavior[rows, action], target_prob=target[rows, action])
    diag = compute_diagnostics(data, target_probs_all=target, behavior_probs_all=behavior,
                               logged_action=action)
    assert diag.rare_action_rate == pytest.approx(3 / 4)
    assert diag.action_match_rate == pytest.approx(2 / 4)
    assert compute_diagnostics(data, target_probs_all=target, behavior_probs_all=behavior,
                               rare_threshold=0.012).rare_action_rate == pytest.approx(2 / 4)


def test_rare_action_rate_from_logged_rows_only():
    # Threshold 0.5, b = (0.25, 0.5, 0.4, 1.0), pi = (1, 1, 0.5, 0).
    data = one_step([0.25, 0.5, 0.4, 1.0], [1.0, 1.0, 0.5, 0.0])
    # Hits: row 0 (pi 1, b .25 < .5) and row 2 (pi .5, b .4 < .5); row 1 has b = .5, not < .5.
    # IS estimate (1/0.25 + 1/0.4) / 4 = 1.625, clipped to a rate of 1.
    diag = compute_diagnostics(data, rare_threshold=0.5)
    assert diag.rare_action_rate == 1.0
    diag = compute_diagnostics(one_step([0.25, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9],
                                        [1.0] * 8), rare_threshold=0.5)
    assert diag.rare_action_rate == pytest.approx((1 / 0.25) / 8)  # unbiased IS estimate


def test_matrix_inputs_are_validated_against_logged_rows():
    data = one_step([0.5, 0.5], [1.0, 0.0])
    target = np.array([[1.0, 0.0], [1.0, 0.0]])
    behavior = np.full((2, 2), 0.5)
    ok = compute_diagnostics(data, target_probs_all=target, behavior_probs_all=behavior,
                             logged_action=np.array([0, 1]))
    assert ok.action_match_rate == 0.5 and ok.rare_action_rate == 0.0
    with pytest.raises(ValueError, match="^target_probs_all: entry at the logged action"):
        compute_diagnostics(data, target_probs_all=target, logged_action=np.array([1, 0]))
    with pytest.raises(ValueError, match="^target_probs_all: expected shape"):
        compute_diagnostics(data, target_probs_all=np.ones((3, 2)))
    with pytest.raises(ValueError, match="^behavior_probs_all: value"):
        compute_diagnostics(data, behavior_probs_all=np.array([[0.5, 1.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="^logged_action"):
        compute_diagnostics(data, target_probs_all=target, logged_action=np.array([0, 2]))
    with pytest.raises(ValueError, match="^rare_threshold"):
        compute_diagnostics(data, rare_threshold=0.0)


def test_diagnostics_as_dict_round_trips():
    diag = compute_diagnostics(one_step([0.5, 0.25], [0.5, 0.5]))
    d = diag.as_dict()
    assert list(d) == ["ess", "ess_fraction", "per_decision_ess_fraction", "max_weight_share",
                       "rare_action_rate", "action_match_rate"]
    assert all(isinstance(v, float) for v in d.values())
    assert Diagnostics(**d) == diag


def test_estimator_disagreement():
    estimates = {
        "a": Estimate("a", 1.0, 0.5, 1.5, 0.2),  # width 1
        "b": Estimate("b", 2.0, 1.5, 2.5, 0.2),  # width 1
        "c": Estimate("c", 3.0, 2.0, 4.0, 0.4),  # width 2
    }
    # spread 3 - 1 = 2, mean width 4/3 -> 1.5
    assert estimator_disagreement(estimates) == pytest.approx(1.5)
    same = {k: Estimate(k, 1.0, 0.0, 2.0, 0.5) for k in "ab"}
    assert estimator_disagreement(same) == 0.0
    nan_ci = {k: Estimate(k, v, math.nan, math.nan, math.nan) for k, v in (("a", 1), ("b", 2))}
    assert estimator_disagreement(nan_ci) == math.inf
    assert math.isnan(estimator_disagreement({}))
    with_nan = dict(estimates, d=Estimate("d", math.nan, math.nan, math.nan, math.nan))
    assert estimator_disagreement(with_nan) == pytest.approx(1.5)
