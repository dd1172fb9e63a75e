"""The gain over the incumbent paired per episode (GateConfig.paired_by = "episodes"): the
per-episode terms, their paired standard error, its coverage whatever the Q-model, and the
gate deciding on it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from offline_rl.ope.diagnostics import Diagnostics
from offline_rl.ope.estimators import Estimate, LoggedData, estimate, per_episode
from offline_rl.ope.evaluate import PolicyEvaluation, with_episode_gains
from offline_rl.ope.gate import GateConfig, Incumbent, decide, verify_promotion

# a contextual bandit: 6 contexts, 3 actions, known logging probabilities
_rng = np.random.default_rng(11)
F = _rng.uniform(0.0, 1.0, (6, 3))
PX = _rng.dirichlet(np.ones(6))
B = _rng.dirichlet(4 * np.ones(3), size=6)
TARGET = F.argmax(axis=1)  # deterministic: the truly best action of each context
TRUE_GAIN = float(PX @ F[np.arange(6), TARGET] - PX @ (B * F).sum(axis=1))
HEALTHY = Diagnostics(ess=500.0, ess_fraction=0.05, per_decision_ess_fraction=0.2,
                      max_weight_share=0.01, rare_action_rate=0.0, action_match_rate=0.3)


def _log(n: int, seed: int, model: float | None) -> LoggedData:
    """``n`` one-step episodes; ``model``: a constant (wrong) Q-model, None: none."""
    rng = np.random.default_rng(seed)
    x = rng.choice(6, size=n, p=PX)
    u = rng.random(n)
    a = (u[:, None] > np.cumsum(B[x], axis=1)).sum(axis=1)
    r = F[x, a] + 0.5 * rng.standard_normal(n)
    q = None if model is None else np.full(n, model)
    return LoggedData.from_arrays(np.arange(n), np.zeros(n, dtype=int), r, B[x, a],
                                  (a == TARGET[x]).astype(float), q_logged=q, v_target=q)


def test_per_episode_terms_average_to_the_estimate():
    data = _log(300, 0, model=0.3)
    for name in ("pdis", "dm", "dr"):
        terms = per_episode(data, name, max_weight=None)
        assert terms.shape == (300,)
        assert terms.mean() == pytest.approx(estimate(data, name, n_bootstrap=0)[name].value)
    with pytest.raises(ValueError, match="'snipw' is not a mean over episodes"):
        per_episode(data, "snipw")
    with pytest.raises(ValueError, match="dr needs q_logged, v_target"):
        per_episode(_log(10, 0, model=None), "dr")


def test_the_paired_interval_covers_the_true_gain_whatever_the_model():
    """Doubly robust with the logged propensities is unbiased for any fixed Q-model, so the
    90% interval of the per-episode paired gain over the behaviour policy covers the true gain
    about 90% of the time, with a good model and with a badly wrong one."""
    q = stats.t.ppf(0.95, 399)
    for model in (0.0, 0.5, 2.0):
        covered = 0
        for seed in range(400):
            data = _log(400, 1000 + seed, model)
            cand = PolicyEvaluation("c", {}, HEALTHY, 0.0,
                                    episode_terms={"dr": per_episode(data, "dr")})
            returns = np.asarray(data.reward, dtype=np.float64)  # one step: the returns
            g = with_episode_gains([cand], "behavior", {"dr": returns})[0] \
                .episode_gain("behavior", "dr")
            assert g is not None and g["n"] == 400
            covered += abs(g["gain"] - TRUE_GAIN) <= q * g["se"]
        assert 0.86 <= covered / 400 <= 0.94, (model, covered)


def _evaluation(name: str, dr: float, gain: float, se: float) -> PolicyEvaluation:
    est = {"dr": Estimate("dr", dr, dr - 1.0, dr + 1.0, 0.5),
           "pdis": Estimate("pdis", dr, dr - 1.0, dr + 1.0, 0.5)}
    refits = {"alpha": 0.1, "values": {"dr": [dr - 0.8, dr + 0.8, dr - 0.4, dr + 0.4]}}
    return PolicyEvaluation(name, est, HEALTHY, 0.0, extra={
        "refit_replicates": refits,
        "episode_gains": {"behavior": {"dr": {"gain": gain, "se": se, "n": 5000}}}})


def test_the_gate_decides_on_the_per_episode_gain_when_told_to():
    incumbent = Incumbent("behavior", 5.0, 4.9, 5.1, replicates=(5.0, 5.0, 5.0, 5.0))
    cand = _evaluation("a", dr=5.4, gain=0.4, se=0.05)
    by_refits = decide([cand], incumbent)  # sd 0.68 over 4 refits: the bound is far below
    assert not by_refits.promoted
    decision = decide([cand], incumbent, GateConfig(paired_by="episodes"))
    assert decision.promoted and decision.candidate == "a"
    half = stats.t.ppf(0.95, 4999) * 0.05
    assert decision.verdicts[0].lower_bound == pytest.approx(5.0 + 0.4 - half)
    assert any("paired on 5000 held-out episodes" in r for r in decision.reasons)
    ok, lower, bar = verify_promotion(decision.as_dict())
    assert ok and lower > bar
    # a gain recorded against another incumbent is not used: the refits decide
    other = Incumbent("earlier:bc", 5.0, 4.9, 5.1, replicates=(5.0, 5.0, 5.0, 5.0))
    assert not decide([cand], other, GateConfig(paired_by="episodes")).promoted
    with pytest.raises(ValueError, match="paired_by: expected one of"):
        GateConfig(paired_by="bootstrap")


def test_the_incumbents_own_evaluation_gets_no_gain_over_itself():
    terms = {"dr": np.array([1.0, 2.0, 3.0])}
    inc = PolicyEvaluation("incumbent:x", {}, HEALTHY, 0.0, episode_terms=terms)
    cand = PolicyEvaluation("c", {}, HEALTHY, 0.0,
                            episode_terms={"dr": np.array([2.0, 2.0, 5.0])})
    out = with_episode_gains([inc, cand], "incumbent:x", terms)
    assert "episode_gains" not in out[0].extra
    g = out[1].episode_gain("incumbent:x", "dr")
    assert g == {"gain": pytest.approx(1.0), "se": pytest.approx(np.std([1, 0, 2], ddof=1)
                                                                 / np.sqrt(3)), "n": 3}


def test_the_torch_fqe_device_is_the_cpu_unless_cuda_is_named():
    import torch

    from offline_rl.ope.evaluate import torch_fqe_device

    assert torch_fqe_device("auto") == torch_fqe_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="expected auto, cpu or cuda"):
        torch_fqe_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            torch_fqe_device("cuda:0")
