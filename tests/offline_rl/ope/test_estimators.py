"""Tests of the OPE estimators: hand-computed values, exact truths, bootstrap, validation."""

from __future__ import annotations

import numpy as np
import pytest

from offline_rl.ope.bootstrap import percentile_interval, resample_counts
from offline_rl.ope.estimators import (
    ESTIMATORS,
    Estimate,
    LoggedData,
    _Stats,
    estimate,
    estimate_on_counts,
    high_confidence_lower_bound,
    on_policy_value,
)

# --------------------------------------------------------------------------------------------
# Fixtures: a tiny hand-made log, a finite MDP with exact values, a contextual bandit
# --------------------------------------------------------------------------------------------


def tiny_log(**overrides) -> LoggedData:
    """Episode 0 has two decisions, episode 1 one decision.

    row  ep  t  r   b    pi    rho  w    Q_hat  V_hat
    0    0   0  1   0.5  1.0   2    2    1.2    1.5
    1    0   1  2   0.5  0.25  0.5  1    1.8    1.0
    2    1   0  3   0.5  0.25  0.5  0.5  2.0    2.5
    """
    fields = dict(
        episode=np.array([0, 0, 1]),
        step=np.array([0, 1, 0]),
        reward=np.array([1.0, 2.0, 3.0]),
        behavior_prob=np.array([0.5, 0.5, 0.5]),
        target_prob=np.array([1.0, 0.25, 0.25]),
        q_logged=np.array([1.2, 1.8, 2.0]),
        v_target=np.array([1.5, 1.0, 2.5]),
    )
    fields.update(overrides)
    return LoggedData(**fields)


# A 3-state, 2-action MDP with random episode end (so episodes have 1 to 3 decisions).
S, A, H = 3, 2, 3
P = np.array([  # P[s, a, s']
    [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]],
    [[0.3, 0.3, 0.4], [0.5, 0.1, 0.4]],
    [[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]],
])
R = np.array([[1.0, 0.0], [0.5, 2.0], [-1.0, 1.5]])  # mean reward R[s, a]
END = np.array([[0.1, 0.3], [0.2, 0.1], [0.4, 0.2]])  # P(episode ends after (s, a))
D0 = np.array([0.5, 0.3, 0.2])
TARGET = np.array([[0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])
BEHAVIOR = np.array([[0.5, 0.5], [0.6, 0.4], [0.5, 0.5]])
NOISE = 0.3


def mdp_truth(policy: np.ndarray, gamma: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Exact value, Q[t, s, a] and V[t, s] of ``policy`` by backward induction."""
    q = np.zeros((H, S, A))
    v = np.zeros((H + 1, S))
    for t in reversed(range(H)):
        q[t] = R + gamma * (1 - END) * (P @ v[t + 1])
        v[t] = (policy * q[t]).sum(axis=1)
    return float(D0 @ v[0]), q, v[:H]


def _draw(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs``."""
    return (rng.random((probs.shape[0], 1)) > probs.cumsum(axis=1)).sum(axis=1)


def mdp_log(n: int, seed: int, gamma: float = 0.9, behavior: np.ndarray = BEHAVIOR,
            target: np.ndarray = TARGET) -> LoggedData:
    """``n`` episodes of the behaviour policy, with exact Q/V of the target as the model."""
    rng = np.random.default_rng(seed)
    _, q, v = mdp_truth(target, gamma)
    state = _draw(rng, np.tile(D0, (n, 1)))
    alive = np.ones(n, dtype=bool)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("ep", "t", "r", "b", "pi", "q", "v")}
    for t in range(H):
        ep = np.flatnonzero(alive)
        s = state[ep]
        a = _draw(rng, behavior[s])
        cols["ep"].append(ep)
        cols["t"].append(np.full(ep.shape, t))
        cols["r"].append(R[s, a] + NOISE * rng.standard_normal(ep.shape))
        cols["b"].append(behavior[s, a])
        cols["pi"].append(target[s, a])
        cols["q"].append(q[t, s, a])
        cols["v"].append(v[t, s])
        ended = rng.random(ep.shape) < END[s, a]
        state[ep] = _draw(rng, P[s, a])
        alive[ep[ended]] = False
    c = {k: np.concatenate(x) for k, x in cols.items()}
    return LoggedData.from_arrays(c["ep"], c["t"], c["r"], c["b"], c["pi"], q_logged=c["q"],
                                  v_target=c["v"])


# Contextual bandit: 10 contexts, 4 actions.
X, K = 10, 4
_bandit_rng = np.random.default_rng(123)
F = _bandit_rng.uniform(0.0, 1.0, (X, K))  # mean reward f(x, a), in [0, 1]
PX = _bandit_rng.dirichlet(np.ones(X))
B_BANDIT = _bandit_rng.dirichlet(5 * np.ones(K), size=X)
PI_BANDIT = 0.7 * np.eye(K)[F.argmax(axis=1)] + 0.3 * B_BANDIT
BANDIT_TRUTH = float(PX @ (PI_BANDIT * F).sum(axis=1))


def bandit_log(n: int, seed: int, bernoulli: bool = False) -> LoggedData:
    """One-step episodes; the model is the exact mean reward (a perfect model)."""
    rng = np.random.default_rng(seed)
    x = _draw(rng, np.tile(PX, (n, 1)))
    a = _draw(rng, B_BANDIT[x])
    mean = F[x, a]
    r = (rng.random(n) < mean).astype(float) if bernoulli else mean + 0.3 * rng.standard_normal(n)
    return LoggedData(
        episode=np.arange(n), step=np.zeros(n, dtype=int), reward=r,
        behavior_prob=B_BANDIT[x, a], target_prob=PI_BANDIT[x, a],
        q_logged=mean, v_target=(PI_BANDIT[x] * F[x]).sum(axis=1),
    )


# --------------------------------------------------------------------------------------------
# Hand-computed values
# --------------------------------------------------------------------------------------------


def test_hand_computed_values_of_every_estimator():
    g = 0.5
    # Returns: G_0 = 1 + 0.5 * 2 = 2, G_1 = 3. Final weights: w_0 = 2 * 0.5 = 1, w_1 = 0.5.
    ipw = (1 * 2 + 0.5 * 3) / 2  # 1.75
    snipw = (1 * 2 + 0.5 * 3) / (1 + 0.5)  # 7/3
    # PDIS: t=0: (w=2 * r=1 + 0.5 * 3) / 2 = 1.75; t=1: (w=1 * r=2 + 0) / 2 = 1.
    pdis = (2 * 1 + 0.5 * 3) / 2 + g * (1 * 2 + 0) / 2  # 2.25
    # SNPDIS: t=0 normaliser 2 + 0.5; t=1 normaliser 1 + 0.5 (episode 1 ended, keeps w=0.5).
    snpdis = (2 * 1 + 0.5 * 3) / 2.5 + g * (1 * 2) / 1.5  # 1.4 + 2/3
    dm = (1.5 + 2.5) / 2  # 2.0
    # DR, episode 0: [2 * (1 - 1.2) + 1 * 1.5] + g * [1 * (2 - 1.8) + 2 * 1.0] = 1.1 + 1.1;
    # episode 1: 0.5 * (3 - 2) + 1 * 2.5 = 3.0.
    dr = ((2 * (1 - 1.2) + 1.5 + g * (1 * (2 - 1.8) + 2 * 1.0)) + (0.5 * (3 - 2) + 2.5)) / 2
    # SNDR: t=0: sum w(r-Q)/sum w = (2*(-0.2) + 0.5*1)/2.5; V term normaliser n = 2.
    #       t=1: (1 * 0.2 + 0) / (1 + 0.5); V term sum w_0 V_1 / sum w_0 = (2 * 1.0 + 0) / 2.5.
    sndr = ((2 * -0.2 + 0.5 * 1) / 2.5 + (1.5 + 2.5) / 2
            + g * ((1 * 0.2) / 1.5 + (2 * 1.0) / 2.5))
    expected = dict(ipw=ipw, snipw=snipw, pdis=pdis, snpdis=snpdis, dm=dm, dr=dr, sndr=sndr)

    got = estimate(tiny_log(), gamma=g, n_bootstrap=0)

    assert list(got) == list(ESTIMATORS)
    for name, value in expected.items():
        assert got[name].value == pytest.approx(value, abs=1e-12), name
        assert got[name].name == name
    assert np.isnan(got["dr"].low) and np.isnan(got["dr"].stderr)  # no bootstrap


def test_max_weight_clips_cumulative_weights():
    # Clip at 1.5: w_0 = (min(2, 1.5), 1) = (1.5, 1), w_1 = 0.5.
    got = estimate(tiny_log(), ("ipw", "pdis"), gamma=0.5, n_bootstrap=0, max_weight=1.5)
    assert got["ipw"].value == pytest.approx((1 * 2 + 0.5 * 3) / 2)
    assert got["pdis"].value == pytest.approx((1.5 * 1 + 0.5 * 3) / 2 + 0.5 * (1 * 2) / 2)


def test_on_policy_value_is_mean_discounted_return():
    data = tiny_log()
    got = on_policy_value(data.reward, data.episode, gamma=0.5, n_bootstrap=0)
    assert got.name == "behavior"
    assert got.value == pytest.approx((2.0 + 3.0) / 2)
    # Rows out of order with string ids and explicit steps give the same value.
    got2 = on_policy_value(data.reward[::-1], np.array(["b", "a", "a"]), step=data.step[::-1],
                           gamma=0.5, n_bootstrap=0)
    assert got2.value == pytest.approx(2.5)


def test_model_estimators_skipped_without_model():
    got = estimate(tiny_log(q_logged=None, v_target=None), n_bootstrap=0)
    assert set(got) == {"ipw", "snipw", "pdis", "snpdis"}
    only_v = estimate(tiny_log(q_logged=None), n_bootstrap=0)
    assert "dm" in only_v and "dr" not in only_v and "sndr" not in only_v
    assert estimate(tiny_log(v_target=None), "dr", n_bootstrap=0) == {}


def test_from_arrays_sorts_and_reindexes_arbitrary_ids():
    ref = estimate(tiny_log(), gamma=0.5, n_bootstrap=0)
    order = np.array([2, 1, 0])  # reversed rows; string ids: "b" for episode 0, "x" for 1
    data = LoggedData.from_arrays(
        np.array(["b", "b", "x"])[order], np.array([0, 1, 0])[order],
        np.array([1.0, 2.0, 3.0])[order],
        np.array([0.5, 0.5, 0.5])[order], np.array([1.0, 0.25, 0.25])[order],
        q_logged=np.array([1.2, 1.8, 2.0])[order], v_target=np.array([1.5, 1.0, 2.5])[order],
    )
    assert data.n_episodes == 2 and data.horizon == 2
    np.testing.assert_array_equal(data.episode, [0, 0, 1])
    np.testing.assert_array_equal(data.step, [0, 1, 0])
    got = estimate(data, gamma=0.5, n_bootstrap=0)
    for name in ESTIMATORS:
        assert got[name].value == pytest.approx(ref[name].value, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Identities and exact truths
# --------------------------------------------------------------------------------------------


def test_target_equal_behavior_gives_on_policy_mean():
    data = mdp_log(2000, seed=1, target=BEHAVIOR)
    assert len(np.unique(data.episode_lengths)) > 1  # variable lengths exercise the convention
    mean = on_policy_value(data.reward, data.episode, step=data.step, gamma=0.9,
                           n_bootstrap=0).value
    got = estimate(data, ("ipw", "snipw", "pdis", "snpdis"), gamma=0.9, n_bootstrap=0)
    for name in ("ipw", "pdis"):
        assert got[name].value == pytest.approx(mean, rel=1e-12, abs=1e-12)
    for name in ("snipw", "snpdis"):  # exactly, up to floating-point summation order
        assert got[name].value == pytest.approx(mean, rel=1e-12, abs=1e-12)


def test_target_equal_behavior_bootstrap_matches_on_policy_bootstrap():
    data = mdp_log(500, seed=2, target=BEHAVIOR)
    behavior = on_policy_value(data.reward, data.episode, step=data.step, gamma=0.9,
                               n_bootstrap=300, seed=7)
    ipw = estimate(data, "ipw", gamma=0.9, n_bootstrap=300, seed=7)["ipw"]
    assert (ipw.low, ipw.high, ipw.stderr) == pytest.approx(
        (behavior.low, behavior.high, behavior.stderr), rel=1e-9)


def test_finite_mdp_estimators_recover_exact_value():
    gamma = 0.9
    truth, _, _ = mdp_truth(TARGET, gamma)
    behavior_value, _, _ = mdp_truth(BEHAVIOR, gamma)
    assert abs(truth - behavior_value) > 0.3  # the test distinguishes the two policies
    got = estimate(mdp_log(20_000, seed=3), ("pdis", "snpdis", "dr", "sndr", "dm"),
                   gamma=gamma, n_bootstrap=200, seed=0)
    for name in ("pdis", "snpdis", "dr", "sndr"):
        assert abs(got[name].value - truth) < max(4 * got[name].stderr, 0.01), name
        assert got[name].stderr < 0.05
    assert got["dm"].value == pytest.approx(truth, abs=0.03)  # exact model, only d0 sampling
    # With the exact Q as control variate DR is far less variable than per-decision IS.
    assert got["dr"].stderr < 0.5 * got["pdis"].stderr


def test_dr_variance_reduction_across_independent_datasets():
    gamma = 0.9
    truth, _, _ = mdp_truth(TARGET, gamma)
    values = np.array([
        [e.value for e in estimate(mdp_log(300, seed=100 + k), ("pdis", "dr"), gamma=gamma,
                                   n_bootstrap=0).values()]
        for k in range(40)
    ])
    rmse = np.sqrt(((values - truth) ** 2).mean(axis=0))
    assert rmse[1] < 0.5 * rmse[0]


def test_one_step_bandit_reductions_and_perfect_model_dr():
    data = bandit_log(20_000, seed=4)
    got = estimate(data, n_bootstrap=0)
    assert got["pdis"].value == pytest.approx(got["ipw"].value, rel=1e-12)
    assert got["snpdis"].value == pytest.approx(got["snipw"].value, rel=1e-12)
    # Bandit SNDR (Open Bandit Pipeline): mean(w (r - q)) / mean(w) + mean(v).
    w = data.target_prob / data.behavior_prob
    sndr = (w * (data.reward - data.q_logged)).mean() / w.mean() + data.v_target.mean()
    dr = (w * (data.reward - data.q_logged)).mean() + data.v_target.mean()
    assert got["sndr"].value == pytest.approx(sndr, rel=1e-12)
    assert got["dr"].value == pytest.approx(dr, rel=1e-12)
    # A perfect model leaves only context sampling and weighted noise: very close to truth.
    assert got["dr"].value == pytest.approx(BANDIT_TRUTH, abs=0.01)
    assert abs(got["dr"].value - BANDIT_TRUTH) < abs(got["ipw"].value - BANDIT_TRUTH) + 0.005


# --------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_and_contains_point_estimate():
    data = mdp_log(1000, seed=5)
    first = estimate(data, gamma=0.9, n_bootstrap=300, seed=11)
    again = estimate(data, gamma=0.9, n_bootstrap=300, seed=11)
    other = estimate(data, gamma=0.9, n_bootstrap=300, seed=12)
    for name, est in first.items():
        assert est == again[name]
        assert est.low != other[name].low or est.high != other[name].high
        assert est.low < est.value < est.high, name
        assert est.stderr > 0
        assert set(est.as_dict()) == {"value", "low", "high", "stderr"}


def test_vectorised_bootstrap_equals_naive_resampling():
    """Sums of count-weighted statistics equal estimates on explicitly resampled episodes."""
    data = mdp_log(60, seed=6)
    stats = _Stats(data, ESTIMATORS, 0.9, None)
    counts = next(resample_counts(data.n_episodes, 5, np.random.default_rng(0)))
    fast = stats.values(counts @ stats.matrix, float(data.n_episodes))
    for b in range(counts.shape[0]):
        reps = counts[b].astype(int)
        rows = np.repeat(np.arange(data.n_episodes), reps)  # resampled episodes
        new_id = np.arange(rows.shape[0])
        pick = np.concatenate([np.flatnonzero(data.episode_index == e) for e in rows])
        ids = np.repeat(new_id, data.episode_lengths[rows])
        resampled = LoggedData(ids, data.step[pick], data.reward[pick], data.behavior_prob[pick],
                               data.target_prob[pick], data.q_logged[pick], data.v_target[pick])
        slow = estimate(resampled, gamma=0.9, n_bootstrap=0)
        np.testing.assert_allclose(fast[b], [slow[k].value for k in ESTIMATORS], rtol=1e-10)


def test_resample_counts_are_multinomial_chunks():
    chunks = list(resample_counts(50, 23, np.random.default_rng(0), max_bytes=28 * 50 * 10))
    assert [c.shape for c in chunks] == [(10, 50), (10, 50), (3, 50)]
    counts = np.vstack(chunks)
    np.testing.assert_array_equal(counts.sum(axis=1), 50)
    assert counts.mean() == pytest.approx(1.0) and counts.var() == pytest.approx(1, abs=0.1)


def test_percentile_interval_and_stderr():
    replicates = np.arange(101, dtype=float)[:, None]  # 0, 1, ..., 100
    low, high, stderr = percentile_interval(replicates, alpha=0.1)
    assert (low[0], high[0]) == pytest.approx((5.0, 95.0))
    assert stderr[0] == pytest.approx(np.arange(101).std(ddof=1))
    with_nan = np.vstack([replicates, [[np.nan]]])  # NaN replicates are ignored
    assert percentile_interval(with_nan, alpha=0.1)[0][0] == pytest.approx(5.0)


def test_bootstrap_interval_coverage_on_well_specified_case():
    gamma = 0.9
    truth, _, _ = mdp_truth(TARGET, gamma)
    names = ("pdis", "snpdis", "dr")
    covered = np.zeros(len(names))
    seeds = range(50)
    for seed in seeds:
        got = estimate(mdp_log(400, seed=1000 + seed), names, gamma=gamma, n_bootstrap=200,
                       seed=seed)
        covered += [got[k].low <= truth <= got[k].high for k in names]
    coverage = covered / len(seeds)
    assert (coverage >= 0.85).all(), dict(zip(names, coverage, strict=True))


# --------------------------------------------------------------------------------------------
# High-confidence lower bound
# --------------------------------------------------------------------------------------------


def test_high_confidence_lower_bound_is_valid_and_tightens_with_data():
    small = [high_confidence_lower_bound(bandit_log(500, seed=s, bernoulli=True),
                                         return_range=(0.0, 1.0), seed=s) for s in range(10)]
    large = [high_confidence_lower_bound(bandit_log(20_000, seed=s, bernoulli=True),
                                         return_range=(0.0, 1.0), seed=s) for s in range(10)]
    assert max(small) < BANDIT_TRUTH and max(large) < BANDIT_TRUTH
    assert min(large) > max(small)
    assert min(large) > BANDIT_TRUTH - 0.15  # not vacuous with enough data
    fixed = high_confidence_lower_bound(bandit_log(20_000, seed=0, bernoulli=True),
                                        return_range=(0.0, 1.0), weight_clip=2.0)
    assert 0.0 < fixed < BANDIT_TRUTH


def test_high_confidence_lower_bound_hand_computed():
    # One-step episodes, returns in [0, 2] -> normalised G' = (0.5, 1, 0, 0.25);
    # weights pi/b = (2, 1, 1, 0.5) -> X = (1, 1, 0, 0.125); clip c = 0.9 -> Y = (.9, .9, 0, .125).
    data = LoggedData(episode=np.arange(4), step=np.zeros(4, dtype=int),
                      reward=np.array([1.0, 2.0, 0.0, 0.5]),
                      behavior_prob=np.array([0.5, 0.5, 0.5, 0.5]),
                      target_prob=np.array([1.0, 0.5, 0.5, 0.25]))
    y = np.array([0.9, 0.9, 0.0, 0.125])
    delta, n, log_term = 0.5, 4, np.log(2 / 0.5)
    # Maurer & Pontil: mean - 7 c ln(2/delta) / (3 (n-1)) - sqrt(2 var ln(2/delta) / n).
    bound = y.mean() - 7 * 0.9 * log_term / (3 * 3) - np.sqrt(2 * y.var(ddof=1) * log_term / n)
    bound = max(bound, 0.0)  # clipped to the normalised range [0, 1]
    got = high_confidence_lower_bound(data, delta=delta, weight_clip=0.9, return_range=(0, 2))
    assert got == pytest.approx(0.0 + 2.0 * bound)
    # With many copies of the same episodes the penalties shrink and the bound is positive.
    many = LoggedData(episode=np.arange(4000), step=np.zeros(4000, dtype=int),
                      reward=np.tile(data.reward, 1000), behavior_prob=np.full(4000, 0.5),
                      target_prob=np.tile(data.target_prob, 1000))
    y = np.tile(y, 1000)
    bound = y.mean() - 7 * 0.9 * log_term / (3 * 3999) - np.sqrt(2 * y.var(ddof=1) * log_term
                                                                  / 4000)
    assert bound > 0
    got = high_confidence_lower_bound(many, delta=delta, weight_clip=0.9, return_range=(0, 2))
    assert got == pytest.approx(2.0 * bound)


def test_high_confidence_lower_bound_edge_cases_and_validation():
    data = bandit_log(200, seed=0, bernoulli=True)
    assert high_confidence_lower_bound(tiny_log(), return_range=(0.0, 10.0)) == 0.0  # n=2
    with pytest.raises(ValueError, match="return_range"):
        high_confidence_lower_bound(data, return_range=(0.0, 0.5))
    with pytest.raises(ValueError, match="delta"):
        high_confidence_lower_bound(data, delta=0.0)
    with pytest.raises(ValueError, match="weight_clip"):
        high_confidence_lower_bound(data, weight_clip=-1.0)
    observed = high_confidence_lower_bound(data)  # observed range [0, 1]
    assert observed == high_confidence_lower_bound(data, return_range=(0.0, 1.0))


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "detail"),
    [
        (dict(behavior_prob=np.array([0.5, 0.0, 0.5])), "behavior_prob", "row 1"),
        (dict(behavior_prob=np.array([0.5, 0.5, 1.5])), "behavior_prob", "row 2"),
        (dict(target_prob=np.array([-0.1, 0.5, 0.5])), "target_prob", "row 0"),
        (dict(reward=np.array([1.0, np.nan, 3.0])), "reward", "row 1"),
        (dict(v_target=np.array([1.0, 2.0, np.inf])), "v_target", "row 2"),
        (dict(reward=np.array([1.0, 2.0])), "reward", "length 2"),
        (dict(q_logged=np.array([1.0, 2.0, 3.0, 4.0])), "q_logged", "length 4"),
        (dict(episode=np.array([1, 1, 0])), "episode", "row 2"),
        (dict(step=np.array([1, 0, 0])), "step", "row 0"),
        (dict(step=np.array([0, 2, 0])), "step", "row 1"),
        (dict(step=np.array([0.0, 0.5, 0.0])), "step", "row 1"),
        (dict(episode=np.array(["a", "a", "b"])), "episode", "from_arrays"),
        (dict(reward=np.ones((3, 1))), "reward", "1-D"),
    ],
)
def test_validation_errors_name_the_field(overrides, field, detail):
    with pytest.raises(ValueError, match=rf"^{field}: .*{detail}"):
        tiny_log(**overrides)


def test_validation_of_empty_data_and_parameters():
    with pytest.raises(ValueError, match="^episode: no rows"):
        LoggedData(np.array([], int), np.array([], int), np.array([]), np.array([]),
                   np.array([]))
    with pytest.raises(ValueError, match="^names: unknown"):
        estimate(tiny_log(), ("ipw", "magic"))
    with pytest.raises(ValueError, match="^gamma"):
        estimate(tiny_log(), gamma=1.5)
    with pytest.raises(ValueError, match="^n_bootstrap"):
        estimate(tiny_log(), n_bootstrap=-1)
    with pytest.raises(ValueError, match="^alpha"):
        estimate(tiny_log(), alpha=1.0)
    with pytest.raises(ValueError, match="^max_weight"):
        estimate(tiny_log(), max_weight=0.0)
    with pytest.raises(ValueError, match=r"^reward: shape \(2,\)"):
        LoggedData.from_arrays(["a", "b", "c"], [0, 0, 0], [1.0, 2.0], [1, 1, 1], [1, 1, 1])


def test_logged_data_is_read_only_copy():
    reward = np.array([1.0, 2.0, 3.0])
    data = tiny_log(reward=reward)
    reward[0] = 100.0
    assert data.reward[0] == 1.0
    with pytest.raises(ValueError):
        data.reward[0] = 5.0


def test_no_support_makes_self_normalised_is_nan_and_sndr_fall_back_to_dm():
    data = tiny_log(target_prob=np.zeros(3))
    got = estimate(data, gamma=0.5, n_bootstrap=50)
    assert got["ipw"].value == 0.0 and got["pdis"].value == 0.0
    assert np.isnan(got["snipw"].value) and np.isnan(got["snpdis"].value)
    assert got["sndr"].value == pytest.approx(got["dm"].value)
    assert got["dr"].value == pytest.approx(got["dm"].value)


def test_estimate_as_dict():
    est = Estimate("dr", 1.0, 0.5, 1.5, 0.25)
    assert est.as_dict() == {"value": 1.0, "low": 0.5, "high": 1.5, "stderr": 0.25}


def test_estimate_on_counts_equals_estimates_on_the_resampled_episodes():
    data = tiny_log()
    names = ("ipw", "snipw", "pdis", "snpdis", "dm", "dr", "sndr")
    full = estimate_on_counts(data, names, np.ones((1, 2)))[0]
    point = estimate(data, names, n_bootstrap=0)
    np.testing.assert_allclose(full, [point[n].value for n in names])
    # counts (2, 0): episode 0 twice, episode 1 not at all = a log of two copies of episode 0
    twice = LoggedData.from_arrays(
        np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.array([1.0, 2.0, 1.0, 2.0]),
        np.full(4, 0.5), np.array([1.0, 0.25, 1.0, 0.25]), q_logged=np.array([1.2, 1.8] * 2),
        v_target=np.array([1.5, 1.0] * 2))
    on_twice = estimate(twice, names, n_bootstrap=0)
    resampled = estimate_on_counts(data, names, np.array([[2.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(resampled[0], [on_twice[n].value for n in names])
    np.testing.assert_allclose(resampled[1], full)
    with pytest.raises(ValueError, match=r"counts: expected shape \(resamples, 2\)"):
        estimate_on_counts(data, names, np.ones(2))
    with pytest.raises(ValueError, match=r"\['dm'\] need q_logged/v_target"):
        estimate_on_counts(tiny_log(q_logged=None, v_target=None), ("ipw", "dm"), np.ones((1, 2)))
