"""Tests of policy evaluation: FQE (single and ensemble) and evaluate_policy against exact values.

The reference is a 2-state, 2-action MDP whose episodes end at random (probability
``END[s, a]`` after each decision), so its values solve a linear system exactly:
``V = (I - M_pi)^-1 r_pi`` with ``M_pi[s, s'] = sum_a pi(a|s) (1 - END[s, a]) P[s, a, s']``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from offline_rl.data.arrays import DecisionArrays
from offline_rl.ope.estimators import estimate
from offline_rl.ope.evaluate import (
    OPEConfig,
    evaluate_policy,
    logged_data_for,
    next_rows,
    refit_counts,
    student_t_quantile,
)
from offline_rl.ope.fqe_torch import FQESettings, fit_fqe, fit_fqe_ensemble

P = np.array([[[0.8, 0.2], [0.3, 0.7]],   # P[s, a, s']
              [[0.5, 0.5], [0.1, 0.9]]])
R = np.array([[1.0, 0.0], [0.0, 2.0]])    # mean reward R[s, a]
END = np.array([[0.5, 0.4], [0.6, 0.5]])
D0 = np.array([0.6, 0.4])
BEHAVIOR = np.array([[0.4, 0.6], [0.3, 0.7]])
TARGET = np.array([1, 1])                 # deterministic: always action 1
NOISE = 0.5


def exact(policy: np.ndarray) -> tuple[float, np.ndarray]:
    """(true value, Q[s, a]) of a deterministic policy, by solving the Bellman equations."""
    pi = np.eye(2)[policy]
    cont = (1 - END)[:, :, None] * P
    m = np.einsum("sa,sat->st", pi, cont)
    v = np.linalg.solve(np.eye(2) - m, (pi * R).sum(axis=1))
    q = R + np.einsum("sat,t->sa", cont, v)
    return float(D0 @ v), q


def rollouts(n: int, seed: int) -> DecisionArrays:
    """``n`` behaviour episodes; the observation is the one-hot state."""
    rng = np.random.default_rng(seed)
    state = (rng.random(n) > D0[0]).astype(int)
    alive = np.ones(n, dtype=bool)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("s", "a", "b", "r", "done", "ep", "t")}
    t = 0
    while alive.any():
        ep = np.flatnonzero(alive)
        s = state[ep]
        a = (rng.random(ep.size) > BEHAVIOR[s, 0]).astype(int)
        done = rng.random(ep.size) < END[s, a]
        cols["s"].append(s)
        cols["a"].append(a)
        cols["b"].append(BEHAVIOR[s, a])
        cols["r"].append(R[s, a] + NOISE * rng.standard_normal(ep.size))
        cols["done"].append(done)
        cols["ep"].append(ep)
        cols["t"].append(np.full(ep.size, t))
        state[ep] = (rng.random(ep.size) > P[s, a, 0]).astype(int)
        alive[ep[done]] = False
        t += 1
    c = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.lexsort((c["t"], c["ep"]))
    c = {k: v[order] for k, v in c.items()}
    return DecisionArrays(
        observations=np.eye(2, dtype=np.float32)[c["s"]], actions=c["a"].astype(np.int64),
        rewards=c["r"].astype(np.float32), terminals=c["done"].astype(np.float32),
        timeouts=np.zeros(c["a"].size, dtype=np.float32), behavior_prob=c["b"],
        episode=c["ep"].astype(np.int64), step=c["t"].astype(np.int64))


class StatePolicy:
    """Deterministic policy on the one-hot state."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        return self.actions[np.asarray(obs).argmax(axis=1)]


class ConstantPolicy:
    """Returns the same actions whatever it is asked about."""

    def __init__(self, actions: list[int]) -> None:
        self.actions = np.asarray(actions)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        return self.actions


@pytest.fixture(scope="module")
def logs() -> DecisionArrays:
    return rollouts(4000, seed=0)


def test_exact_solution_satisfies_the_bellman_equation():
    value, q = exact(TARGET)
    v = q[np.arange(2), TARGET]
    np.testing.assert_allclose(q, R + np.einsum("sat,t->sa", (1 - END)[:, :, None] * P, v))
    assert value == pytest.approx(D0 @ v)
    # hand check of one entry: Q(0, 1) = 0 + (1 - 0.4) * (0.3 V0 + 0.7 V1)
    assert q[0, 1] == pytest.approx(0.6 * (0.3 * v[0] + 0.7 * v[1]))


def test_estimators_with_the_exact_model_recover_the_exact_value(logs):
    value, q = exact(TARGET)
    target = TARGET[logs.observations.argmax(axis=1)]
    s = logs.observations.argmax(axis=1)
    data = logged_data_for(logs, target, q[s, logs.actions], q[s, target])
    est = estimate(data, ("pdis", "snpdis", "dm", "dr", "sndr"), n_bootstrap=200, seed=1)
    for name in ("pdis", "snpdis", "dr", "sndr"):
        assert est[name].value == pytest.approx(value, rel=0.08), name
        assert abs(est[name].value - value) < 4 * est[name].stderr, name
    # with the exact model, doubly robust has less variance than per-decision IS
    assert est["dr"].stderr < est["pdis"].stderr
    # the direct method with the exact model is the sample mean of V(s_0): error is from D0 only
    first = logs.step == 0
    assert est["dm"].value == pytest.approx(q[s[first], TARGET[s[first]]].mean())
    assert est["dm"].value == pytest.approx(value, rel=0.03)


def test_fqe_on_one_hot_states_recovers_the_exact_q(logs):
    value, q = exact(TARGET)
    target = TARGET[logs.observations.argmax(axis=1)]
    fit = fit_fqe(logs.observations, logs.actions, logs.rewards.astype(np.float64),
                  next_rows(logs), np.eye(2)[target], horizon=int(logs.step.max()) + 1,
                  settings=FQESettings(steps=1500, hidden_units=(16,), seed=0))
    s = logs.observations.argmax(axis=1)
    for state in (0, 1):
        fitted = fit.q_all[np.flatnonzero(s == state)[0]]
        np.testing.assert_allclose(fitted, q[state], rtol=0.1, atol=0.1)
    assert fit.n_iterations == min(int(logs.step.max()) + 3, 40)


def test_fqe_ensemble_members_fit_their_own_rows():
    # one-step episodes (no bootstrapping): each member regresses the reward on its rows
    n = 400
    obs = np.random.default_rng(0).standard_normal((n, 1)).astype(np.float32)
    action = np.zeros(n, dtype=np.int64)
    reward = np.r_[np.zeros(n // 2), np.full(n // 2, 4.0)]
    weights = np.ones((3, n))
    weights[1, n // 2:] = 0.0  # member 1 sees only the zero rewards
    weights[2, : n // 2] = 0.0  # member 2 only the fours
    fit = fit_fqe_ensemble(obs, action, reward, np.full(n, -1), np.ones((n, 1)), weights,
                           settings=FQESettings(steps=800, hidden_units=(8,), learning_rate=1e-2,
                                                seed=0))
    assert fit.q_all.shape == (3, n, 1)
    assert fit.q_all[0, 0, 0] == pytest.approx(2.0, abs=0.1)
    assert fit.q_all[1, 0, 0] == pytest.approx(0.0, abs=0.1)
    assert fit.q_all[2, 0, 0] == pytest.approx(4.0, abs=0.1)
    with pytest.raises(ValueError, match="member 1 has no positive weight"):
        fit_fqe_ensemble(obs, action, reward, np.full(n, -1), np.ones((n, 1)),
                         np.r_[np.ones((1, n)), np.zeros((1, n))])
    with pytest.raises(ValueError, match=r"row_weights: expected shape \(members, 400\)"):
        fit_fqe_ensemble(obs, action, reward, np.full(n, -1), np.ones((n, 1)), np.ones(n))


def test_the_final_pass_in_chunks_gives_the_values_of_one_pass(monkeypatch):
    """The fitted members' values of every row come in chunks of ``FINAL_PASS_ROWS`` rows (so
    memory does not grow with members x rows x width); chunking changes no bit of them."""
    from offline_rl.ope import fqe_torch

    rng = np.random.default_rng(1)
    n = 1_000
    obs, action = rng.normal(size=(n, 5)), rng.integers(0, 3, n)
    reward, nxt = rng.normal(size=n), np.where(rng.random(n) < 0.3, -1, np.arange(1, n + 1))
    nxt[-1] = -1
    probs, weights = rng.dirichlet(np.ones(3), n), rng.poisson(1.0, (4, n)) + 1.0
    settings = FQESettings(steps=60, hidden_units=(16, 16), seed=2)

    def fit():
        return fit_fqe_ensemble(obs, action, reward, nxt, probs, weights, horizon=4,
                                settings=settings)

    whole = fit()
    monkeypatch.setattr(fqe_torch, "FINAL_PASS_ROWS", 97)  # 11 chunks, the last one short
    chunked = fit()
    assert np.array_equal(whole.q_all, chunked.q_all)
    assert np.array_equal(whole.final_loss, chunked.final_loss)


def test_policies_fitted_together_get_exactly_their_own_fits():
    """The batched fit of several target policies gives each the members its own fit gives:
    same start, same mini-batches, only the targets differ (so nothing the gate was validated
    on changes)."""
    from offline_rl.ope.fqe_torch import fit_fqe_policies

    rng = np.random.default_rng(3)
    n = 1_500
    obs, action = rng.normal(size=(n, 4)), rng.integers(0, 3, n)
    reward, nxt = rng.normal(size=n), np.where(rng.random(n) < 0.25, -1, np.arange(1, n + 1))
    nxt[-1] = -1
    targets = [np.eye(3)[rng.integers(0, 3, n)], rng.dirichlet(np.ones(3), n),
               np.full((n, 3), 1 / 3)]
    weights = np.r_[np.ones((1, n)), rng.poisson(1.0, (3, n)).astype(float)]
    weights[1:, 0] += 1.0
    settings = FQESettings(steps=90, hidden_units=(16, 16), seed=4)
    together = fit_fqe_policies(obs, action, reward, nxt, targets, weights, gamma=0.9,
                                horizon=5, settings=settings)
    assert together.policies == 3
    for p, probs in enumerate(targets):
        alone = fit_fqe_ensemble(obs, action, reward, nxt, probs, weights, gamma=0.9, horizon=5,
                                 settings=settings)
        mine = together.result(p)
        assert np.array_equal(mine.q_all, alone.q_all), p
        assert np.array_equal(mine.final_loss, alone.final_loss), p
        assert mine.n_iterations == alone.n_iterations
    assert not np.array_equal(together.result(0).q_all, together.result(1).q_all)
    with pytest.raises(ValueError, match="at least one policy"):
        fit_fqe_policies(obs, action, reward, nxt, [], weights)
    with pytest.raises(ValueError, match="the same"):
        fit_fqe_policies(obs, action, reward, nxt, [targets[0], targets[0][:, :2]], weights)
    with pytest.raises(IndexError):
        together.result(3)
    with pytest.raises(IndexError):
        together.q_function(3)
    with pytest.raises(IndexError):
        together.q_function(0, member=weights.shape[0])
    # a member as a function of any state: its values of the logged rows, row by row
    q = together.q_function(1, member=2)
    np.testing.assert_allclose(q(obs[:7]), together.result(1).q_all[2][:7], rtol=1e-5,
                               atol=1e-6)


def test_policies_evaluated_together_equal_each_evaluated_alone(logs):
    from offline_rl.ope.evaluate import StochasticTarget, evaluate_targets

    config = OPEConfig(n_bootstrap=50, fqe_steps=150, fqe_hidden_units=(8,), fqe_refits=3)
    pi = np.array([[0.3, 0.7], [0.1, 0.9]])
    policies = [("always_1", StatePolicy(TARGET)), ("switch", StatePolicy(np.array([1, 0]))),
                ("eps_1", StochasticTarget(lambda obs: pi[np.asarray(obs).argmax(axis=1)]))]
    together = evaluate_targets(policies, logs, config, n_actions=2)
    for (name, policy), ev in zip(policies, together, strict=True):
        alone = evaluate_policy(name, policy, logs, None, config, n_actions=2)
        assert ev.name == name
        assert ev.estimates == alone.estimates, name
        assert ev.extra == alone.extra, name
        assert ev.estimates["dm"].value != together[0].estimates["dm"].value or name == "always_1"


def test_the_fitted_q_function_is_the_evaluations_own_fit_at_any_state(logs):
    """``fitted_q_function`` gives the Q-function the evaluation fits on every episode (its
    member 0: same settings, seed and mini-batches), at the logged states and at new ones."""
    from offline_rl.ope.evaluate import _fqe_target, _torch_fqe_fits, fitted_q_function

    config = OPEConfig(n_bootstrap=50, fqe_steps=150, fqe_hidden_units=(8,), fqe_refits=3)
    q = fitted_q_function("always_1", StatePolicy(TARGET), logs, config, n_actions=2)
    target = _fqe_target(StatePolicy(TARGET).predict(logs.observations), 2, None)
    evaluation_fit = _torch_fqe_fits([target], logs, config)(0)[0][0]
    logged = q(logs.observations)
    assert logged.shape == (logs.actions.shape[0], 2)
    np.testing.assert_allclose(logged, evaluation_fit, rtol=1e-6, atol=1e-6)
    # a state asked about alone gets the values its logged rows got
    per_state = q(np.eye(2, dtype=np.float32))
    for s in (0, 1):
        np.testing.assert_allclose(per_state[s], logged[logs.observations[:, s] == 1][0],
                                   rtol=1e-6, atol=1e-6)
    assert not np.allclose(per_state[0], per_state[1])
    with pytest.raises(ValueError, match="torch FQE backend"):
        fitted_q_function("always_1", StatePolicy(TARGET), logs,
                          dataclasses.replace(config, fqe_backend="d3rlpy"))


def test_evaluate_policy_on_the_mdp_with_refitted_dm_interval(logs):
    value, _ = exact(TARGET)
    config = OPEConfig(n_bootstrap=200, fqe_steps=1200, fqe_hidden_units=(16,), fqe_refits=6)
    ev = evaluate_policy("always_1", StatePolicy(TARGET), logs, None, config, n_actions=2)
    dm = ev.estimates["dm"]
    assert dm.value == pytest.approx(value, rel=0.08)
    assert dm.low < dm.value < dm.high and dm.low <= value <= dm.high
    # the refitted interval is t(5) * sd of the refitted estimates around the point estimate
    level = 1 - config.alpha / 2
    assert (dm.high - dm.low) / 2 == pytest.approx(student_t_quantile(level, 5) * dm.stderr)
    assert ev.extra["fqe_bagged"]
    assert ev.estimates["dr"].value == pytest.approx(value, rel=0.08)
    assert ev.extra["fqe_refits"] == 6 and ev.extra["fqe_backend"] == "torch"
    assert ev.extra["action_distribution"] == [0.0, 1.0]
    no_refit = evaluate_policy("always_1", StatePolicy(TARGET), logs, None,
                               OPEConfig(n_bootstrap=200, fqe_steps=300, fqe_refits=0),
                               n_actions=2)
    assert no_refit.extra["fqe_refits"] == 0  # dm interval from resampling episodes instead
    assert no_refit.estimates["dm"].low < no_refit.estimates["dm"].high


def test_evaluate_policy_hand_computed_importance_weights():
    arrays = DecisionArrays(
        observations=np.eye(2, dtype=np.float32)[[0, 1, 1]], actions=np.array([1, 1, 0]),
        rewards=np.array([1.0, 2.0, 3.0], dtype=np.float32),
        terminals=np.array([0.0, 1.0, 1.0], dtype=np.float32), timeouts=np.zeros(3, np.float32),
        behavior_prob=np.array([0.5, 0.25, 0.5]), episode=np.array([0, 0, 1]),
        step=np.array([0, 1, 0]))
    np.testing.assert_array_equal(next_rows(arrays), [1, -1, -1])
    ev = evaluate_policy("always_1", StatePolicy(np.array([1, 1])), arrays, None,
                         OPEConfig(n_bootstrap=0, fqe_steps=20, fqe_refits=0), n_actions=2)
    # episode 0 matches twice: w = 2 * 4 = 8, G = 3; episode 1 does not match: w = 0
    assert ev.estimates["ipw"].value == pytest.approx((8 * 3 + 0) / 2)
    assert ev.estimates["pdis"].value == pytest.approx((2 * 1 + 8 * 2) / 2)
    assert math.isnan(ev.estimates["ipw"].low)  # no bootstrap asked for
    with pytest.raises(ValueError, match="predict returned 2 actions for 3 observations"):
        evaluate_policy("short", ConstantPolicy([1, 1]), arrays, None, OPEConfig(), n_actions=2)
    with pytest.raises(ValueError, match=r"predict returned action 2 outside \[0, 2\)"):
        evaluate_policy("wide", StatePolicy(np.array([2, 2])), arrays, None, OPEConfig(),
                        n_actions=2)
    with pytest.raises(ValueError, match="d3rlpy FQE backend needs"):
        evaluate_policy("d3", StatePolicy(np.array([1, 1])), arrays, None,
                        OPEConfig(fqe_backend="d3rlpy"), n_actions=2)
    with pytest.raises(ValueError, match="fqe_backend: expected one of"):
        OPEConfig(fqe_backend="jax")


def test_student_t_quantiles():
    for df, exact_q in ((4, 2.7764), (7, 2.3646), (9, 2.2622), (29, 2.0452)):
        assert student_t_quantile(0.975, df) == pytest.approx(exact_q, abs=0.01)
    with pytest.raises(ValueError, match="df: expected at least 1"):
        student_t_quantile(0.975, 0)


class _EpisodeReplay:
    """A replay whose episode ``i`` returns ``i`` times the policy's first action on it."""

    name = "replay"
    columns = ("x",)

    def prepare(self, arrays):
        from offline_rl.ope.replay import ReplayUnavailable

        if "x" not in arrays.extras:
            raise ReplayUnavailable("no x logged")
        return arrays

    def returns(self, arrays, policy, gamma=1.0):
        first = arrays.step == 0
        return arrays.extras["x"][first] * policy(arrays.observations[first])


def test_evaluate_policy_adds_the_replay_estimate_with_paired_replicates(logs):
    from offline_rl.ope.replay import prepare_replay

    episodes = int(logs.episode.max()) + 1
    with_x = dataclasses.replace(logs, extras={"x": logs.episode.astype(np.float64)})
    config = OPEConfig(n_bootstrap=200, fqe_steps=200, fqe_hidden_units=(16,), fqe_refits=4)
    ev = evaluate_policy("always_1", StatePolicy(TARGET), with_x, None, config, n_actions=2,
                         replay=prepare_replay(_EpisodeReplay(), with_x))
    replay = ev.estimates["replay"]
    assert replay.value == pytest.approx((episodes - 1) / 2)  # mean of 0 .. episodes - 1
    assert replay.low < replay.value < replay.high and ev.extra["replay"] == "ok"
    counts = refit_counts(with_x, config)
    expected = counts @ np.arange(episodes) / counts.sum(axis=1)
    np.testing.assert_allclose(ev.extra["refit_replicates"]["values"]["replay"], expected)
    assert set(ev.extra["refit_replicates"]["values"]) == {"dm", "dr", "sndr", "replay"}
    missing = evaluate_policy("always_1", StatePolicy(TARGET), logs, None, config, n_actions=2,
                              replay=prepare_replay(_EpisodeReplay(), logs))
    assert "replay" not in missing.estimates and missing.extra["replay"] == "no x logged"


def exact_stochastic(pi: np.ndarray) -> float:
    """True value of the stochastic policy ``pi[s, a]`` (Bellman equations)."""
    cont = (1 - END)[:, :, None] * P
    m = np.einsum("sa,sat->st", pi, cont)
    v = np.linalg.solve(np.eye(2) - m, (pi * R).sum(axis=1))
    return float(D0 @ v)


def test_evaluate_a_stochastic_target_exactly(logs):
    from offline_rl.ope.evaluate import StochasticTarget

    pi = np.array([[0.3, 0.7], [0.1, 0.9]])  # an epsilon-greedy version of "always 1"
    value = exact_stochastic(pi)
    assert abs(value - exact(TARGET)[0]) > 0.05  # distinguishable from the greedy policy
    target = StochasticTarget(lambda obs: pi[np.asarray(obs).argmax(axis=1)])
    config = OPEConfig(n_bootstrap=200, fqe_steps=1200, fqe_hidden_units=(16,), fqe_refits=6)
    ev = evaluate_policy("eps_1", target, logs, None, config, n_actions=2)
    for name in ("ipw", "pdis", "dm", "dr"):
        assert ev.estimates[name].value == pytest.approx(value, rel=0.08), name
    dr = ev.estimates["dr"]
    assert dr.low <= value <= dr.high
    # the importance weights are the target's probabilities of the logged actions
    rows = np.arange(logs.actions.shape[0])
    data = logged_data_for(logs, np.ones_like(logs.actions), target_probs=pi[logs.observations
                                                                               .argmax(axis=1)])
    np.testing.assert_allclose(data.target_prob,
                               pi[logs.observations.argmax(axis=1)][rows, logs.actions])
    with pytest.raises(ValueError, match="distribution per row"):
        evaluate_policy("bad", StochasticTarget(lambda obs: np.full((len(obs), 2), 0.7)), logs,
                        None, config, n_actions=2)
