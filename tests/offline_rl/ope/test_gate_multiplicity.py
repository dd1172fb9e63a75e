"""Rule 1 over a night's candidates: Holm's step-down (``GateConfig.multiplicity``).

Run as a script, it prints the simulated false-promotion rate and power of ``"none"`` and
``"holm"`` quoted in ``offline_rl/ope/gate.py``::

    OMP_NUM_THREADS=1 .venv/bin/python tests/offline_rl/ope/test_gate_multiplicity.py
"""

import json
import math
import sys

import numpy as np
import pytest

from offline_rl.ope.diagnostics import Diagnostics
from offline_rl.ope.estimators import Estimate
from offline_rl.ope.evaluate import OPEConfig, PolicyEvaluation, student_t_quantile
from offline_rl.ope.gate import (
    DEFAULT_ALPHA,
    GateConfig,
    Incumbent,
    bar_test,
    decide,
    holm_levels,
    paired_gain,
    promotion_bar,
    quantile,
    upper_tail,
    verify_promotion,
)

HEALTHY = Diagnostics(ess=500.0, ess_fraction=0.05, per_decision_ess_fraction=0.2,
                      max_weight_share=0.01, rare_action_rate=0.0, action_match_rate=0.3)
WEAK = Diagnostics(ess=3, ess_fraction=0.0003, per_decision_ess_fraction=0.001,
                   max_weight_share=0.6, rare_action_rate=0.5, action_match_rate=0.01)
NAN = float("nan")


def _paired(name, incumbent, diffs, gain=None, diagnostics=HEALTHY, alpha=0.1):
    """A candidate whose replicate ``k`` beats the incumbent's by ``diffs[k]``; its point gain
    is ``gain`` (default: the mean difference)."""
    diffs = np.asarray(diffs, dtype=float)
    gain = float(diffs.mean()) if gain is None else gain
    reps = np.asarray(incumbent.replicates) + diffs
    est = {"dr": Estimate("dr", incumbent.value + gain, NAN, NAN, NAN)}
    extra = {"refit_replicates": {"alpha": alpha, "values": {"dr": reps.tolist()}}}
    return PolicyEvaluation(name, est, diagnostics, 0.0, extra)


def _unpaired(name, value, low, high, diagnostics=HEALTHY):
    return PolicyEvaluation(name, {"dr": Estimate("dr", value, low, high, NAN)}, diagnostics,
                            0.0)


def _incumbent(rng, k=8, value=100.0):
    return Incumbent("incumbent", value, NAN, NAN, tuple(value + rng.standard_normal(k)))


def _roundtrip(decision):
    return json.loads(json.dumps(decision.as_dict(), default=str))


def test_the_p_value_inverts_the_intervals_quantile():
    for df in (1, 3, 7, 15, 31):
        for p in (0.9, 0.95, 0.975, 0.9875, 0.99, 0.995, 0.5, 0.3):
            q = student_t_quantile(p, df)
            assert quantile(p, df) == q
            assert upper_tail(q, df) == pytest.approx(1 - p, rel=1e-9, abs=1e-12)
    assert upper_tail(quantile(0.95, None), None) == pytest.approx(0.05, rel=1e-12)
    assert upper_tail(NAN, 7) == 1.0 and upper_tail(math.inf, 7) == 0.0
    ts = np.linspace(-6, 6, 61)
    tails = [upper_tail(t, 7) for t in ts]
    assert all(a > b for a, b in zip(tails, tails[1:], strict=False))  # strictly decreasing


def test_a_p_value_below_a_level_is_the_lower_bound_above_the_threshold():
    rng = np.random.default_rng(3)
    incumbent = _incumbent(rng)
    cfg = GateConfig(veto_with=())
    for _ in range(300):
        cand = _paired("a", incumbent, rng.normal(2.0, rng.uniform(0.3, 3.0), 8),
                       gain=float(rng.normal(3.0, 1.5)))
        test = bar_test(cand, incumbent, cfg)
        for level in (0.05, 0.025, 0.05 / 3, 0.0125):
            # the bound at `level` is the t interval at two-sided 2 * level
            gain = paired_gain(cand.estimates["dr"].value,
                               tuple(cand.extra["refit_replicates"]["values"]["dr"]),
                               incumbent, 2 * level)
            assert test.lower_at(level) == pytest.approx(gain.low, rel=1e-12, abs=1e-12)
            if abs(test.lower_at(level) - test.threshold) > 1e-9:
                assert test.rejects(level) == (test.p_value < level)


def test_with_one_candidate_holm_decides_exactly_as_the_lower_bound_rule():
    rng = np.random.default_rng(11)
    incumbent = _incumbent(rng)
    bar = promotion_bar(incumbent.value, 0.02)
    seen = set()
    for i in range(400):
        if i % 2:  # paired: the gain's lower end against the margin
            cand = _paired("a", incumbent, rng.normal(2.0, rng.uniform(0.2, 2.0), 8),
                           gain=float(rng.normal(2.5, 1.0)))
            gain = paired_gain(cand.estimates["dr"].value,
                               tuple(cand.extra["refit_replicates"]["values"]["dr"]),
                               incumbent, 0.1)
            old = gain.low > bar - incumbent.value
        else:  # unpaired: the candidate's own lower end against the bar
            value = float(rng.normal(102.5, 1.0))
            low = value - float(rng.uniform(0.1, 2.0))
            cand = _unpaired("a", value, low, value + 1)
            old = low > bar
        seen.add(old)
        holm = decide([cand], incumbent, GateConfig(veto_with=()))
        none = decide([cand], incumbent, GateConfig(veto_with=(), multiplicity="none"))
        assert holm.promoted == none.promoted == old
        assert holm.reasons == none.reasons
        (h,), (n,) = holm.verdicts, none.verdicts
        assert h.level == n.level == 0.05
        assert h.lower_bound == n.lower_bound == h.adjusted_lower_bound
        assert verify_promotion(_roundtrip(holm)) == verify_promotion(_roundtrip(none))
    assert seen == {True, False}
    # at the boundary: a gain whose lower end is a hair below the margin passes neither
    # rule, a hair above passes both (p-value 0.05 there)
    diffs = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    half = student_t_quantile(0.95, 7) * diffs.std(ddof=1)
    for nudge, passes in ((-1e-9, False), (1e-9, True)):
        edge = _paired("a", incumbent, diffs, gain=bar - incumbent.value + half + nudge)
        for method in ("holm", "none"):
            verdict = decide([edge], incumbent, GateConfig(multiplicity=method)).verdicts[0]
            assert verdict.passed == passes
            assert verdict.p_value == pytest.approx(0.05, rel=1e-6)


def _close_calls(incumbent, n=4):
    """``n`` candidates each of whose gains clears the 2% margin at one-sided 5% but not at
    5% / n: one-sided p-values between 0.0125 and 0.05."""
    diffs = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0])  # sd 1.069
    sd = diffs.std(ddof=1)
    required = promotion_bar(incumbent.value, 0.02) - incumbent.value
    return [_paired(f"c{k}", incumbent, diffs,
                    gain=required + sd * (student_t_quantile(0.95, 7) + 0.1 + 0.05 * k))
            for k in range(n)]


def test_a_family_that_none_promotes_from_and_holm_refuses():
    rng = np.random.default_rng(5)
    incumbent = _incumbent(rng)
    family = _close_calls(incumbent)
    none = decide(family, incumbent, GateConfig(multiplicity="none"))
    assert none.promoted and all(v.passed for v in none.verdicts)
    assert none.family.method == "none" and none.family.size == 4
    holm = decide(family, incumbent, GateConfig())
    assert not holm.promoted and not any(v.passed for v in holm.verdicts)
    p = [v.p_value for v in holm.verdicts]
    assert all(0.0125 < x < 0.05 for x in p) and p == sorted(p, reverse=True)
    # c3 has the smallest p-value: tested at 0.05 / 4, it fails and the step-down stops
    assert [v.level for v in holm.verdicts] == pytest.approx([0.05, 0.025, 0.05 / 3, 0.0125])
    assert any(r.startswith("c3: dr gain over incumbent") and "Holm rank 1 of 4" in r
               and "level 0.0125: lower end" in r and "does not exceed the 2% margin" in r
               for r in holm.reasons)
    assert any(r.startswith("c0: dr gain") and "Holm rank 4 of 4" in r
               and r.endswith("not rejected, the step-down stopped at rank 1")
               for r in holm.reasons)
    assert holm.reasons[-1] == ("rule 1: Holm's step-down over 4 candidates at family level "
                                "0.05 (one-sided)")
    # the same candidate alone is promoted: the family, not the candidate, makes the difference
    assert decide(family[:1], incumbent, GateConfig()).promoted


def test_holm_steps_down_to_a_clearly_better_candidate_and_every_candidate_counts():
    rng = np.random.default_rng(6)
    incumbent = _incumbent(rng)
    close = _close_calls(incumbent, 3)
    strong = _paired("strong", incumbent, rng.normal(8.0, 0.5, 8))
    decision = decide([*close, strong], incumbent, GateConfig())
    assert decision.promoted and decision.candidate == "strong"
    levels = {v.name: v.level for v in decision.verdicts}
    assert levels["strong"] == pytest.approx(0.0125)
    # rank 2 (c2) is tested at 0.05 / 3 and fails: c1 and c0 are not reached
    assert levels["c2"] == pytest.approx(0.05 / 3)
    assert [v.passed for v in decision.verdicts] == [False, False, False, True]
    # a candidate that fails the weight checks still counts in the family: with a weak one,
    # the close call is rank 1 of 2, tested at 0.05 / 2, and fails; alone, at 0.05, it passes
    weak = _paired("weak", incumbent, rng.normal(0.0, 0.5, 8), diagnostics=WEAK)
    with_it = decide([close[2], weak], incumbent, GateConfig())
    assert not with_it.promoted and with_it.family.size == 2
    assert [v.level for v in with_it.verdicts] == pytest.approx([0.025, 0.05])
    assert decide([close[2]], incumbent, GateConfig()).promoted
    # rule 1 steps down on the p-values alone: a blocked candidate whose H0 is rejected
    # (rank 1) lets the close call be tested at 0.05, where it passes
    blocked = _paired("blocked", incumbent, rng.normal(20.0, 0.5, 8), diagnostics=WEAK)
    decision = decide([close[2], blocked], incumbent, GateConfig())
    assert decision.promoted and decision.candidate == "c2"
    assert [v.level for v in decision.verdicts] == pytest.approx([0.05, 0.025])
    assert not decision.verdicts[1].passed  # its weights still keep it out
    # a candidate without a headline estimate counts too (p-value 1, never rejected)
    missing = PolicyEvaluation("missing", {}, HEALTHY, 0.0)
    refused = decide([close[0], missing], incumbent, GateConfig())
    assert not refused.promoted and refused.family.size == 2
    assert refused.verdicts[1].p_value == 1.0 and refused.verdicts[0].level == 0.025


def test_unpaired_candidates_are_tested_on_their_own_intervals():
    incumbent = Incumbent("behavior", 5.0, 4.8, 5.2)  # no replicates: nothing to pair with
    z95 = quantile(0.95, None)
    # value 6, lower end 5.3: standard error 0.7 / z95; z = 0.9 / se = 2.115, p = 0.0172
    a = _unpaired("a", 6.0, 5.3, 6.7)
    b = _unpaired("b", 5.9, 5.6, 6.2)
    test = bar_test(a, incumbent, GateConfig())
    assert test.df is None and test.scale == pytest.approx(0.7 / z95)
    assert test.p_value == pytest.approx(upper_tail(0.9 * z95 / 0.7, None))
    assert test.lower_at(0.05) == 5.3
    assert test.lower_at(0.025) == pytest.approx(6.0 - 0.7 * quantile(0.975, None) / z95)
    decision = decide([a, b], incumbent, GateConfig())
    assert decision.family.alpha == DEFAULT_ALPHA == OPEConfig().alpha
    assert [v.level for v in decision.verdicts] == [0.05, 0.025]  # b has the smaller p
    assert decision.promoted and decision.candidate == "a"
    assert verify_promotion(_roundtrip(decision))[0]
    # the candidate's refit replicates that reproduce its interval: Student's t, K - 1 df
    reps = [5.5, 6.5, 5.8, 6.2, 6.0, 5.9, 6.1, 6.0]
    half = student_t_quantile(0.95, 7) * np.std(reps, ddof=1)
    refit = PolicyEvaluation("r", {"dr": Estimate("dr", 6.0, 6.0 - half, 6.0 + half, NAN)},
                             HEALTHY, 0.0, {"refit_replicates": {"alpha": 0.1,
                                                                 "values": {"dr": reps}}})
    test = bar_test(refit, incumbent, GateConfig())
    assert not test.paired and test.df == 7 and test.resamples == 8
    assert test.scale == pytest.approx(np.std(reps, ddof=1))


def test_the_recorded_evidence_is_reverified_at_holms_level():
    rng = np.random.default_rng(6)
    incumbent = _incumbent(rng)
    close = _close_calls(incumbent, 2)
    strong = _paired("strong", incumbent, rng.normal(8.0, 0.5, 8))
    # strong is rank 1; c1 rank 2 is tested at 0.05 / 2, c0 (rank 3) at 0.05
    decision = decide([close[0], close[1], strong],
                      incumbent, GateConfig(select_by="lower_bound"))
    evidence = _roundtrip(decision)
    assert evidence["config"]["multiplicity"] == "holm"
    assert evidence["family"] == {"method": "holm", "alpha": 0.1, "level": 0.05, "size": 3}
    ok, lower, bar = verify_promotion(evidence)
    assert ok and decision.candidate == "strong" and lower > bar
    assert lower == evidence["verdicts"][2]["adjusted_lower_bound"] < \
        evidence["verdicts"][2]["lower_bound"]

    # a promotion of the close call at rank 3 (it passed at its own alpha / 2 = 0.05 but
    # Holm stopped before it): rewrite the record so that it claims the promotion
    fake = json.loads(json.dumps(evidence))
    fake["candidate"] = "c0"
    v = fake["verdicts"][0]
    assert v["level"] == pytest.approx(0.05) and v["lower_bound"] > bar
    v["passed"] = True
    assert not verify_promotion(fake)[0]  # c1 at rank 2 does not clear the bar at 0.025
    # the same candidate recorded as tested at the unadjusted level fails too
    fake["verdicts"] = [v]
    assert not verify_promotion(fake)[0]  # the family of 3 lost two verdicts
    fake["family"]["size"] = 1
    assert verify_promotion(fake)[0]  # a family of one: level 0.05 is Holm's
    # a recorded level other than Holm's, or an adjusted bound under the bar, does not verify
    for key, value in (("level", 0.05), ("adjusted_lower_bound", bar - 0.01),
                       ("lower_bound", bar - 0.01)):
        tampered = json.loads(json.dumps(evidence))
        tampered["verdicts"][2][key] = value
        assert not verify_promotion(tampered)[0], key
    # a family level above alpha / 2, or a method other than the config's, does not verify
    for key, value in (("level", 0.1), ("method", "none")):
        tampered = json.loads(json.dumps(evidence))
        tampered["family"][key] = value
        assert not verify_promotion(tampered)[0], key
    # "none" records (and those from before the setting) are checked on lower_bound
    none = _roundtrip(decide([close[0], close[1], strong], incumbent,
                             GateConfig(multiplicity="none", select_by="lower_bound")))
    assert none["family"]["method"] == "none" and verify_promotion(none)[0]
    del none["config"]["multiplicity"], none["family"]
    assert verify_promotion(none)[0]
    none["verdicts"][2]["lower_bound"] = bar - 0.01
    assert not verify_promotion(none)[0]


def test_multiplicity_is_a_setting_recorded_with_the_decision():
    assert GateConfig().multiplicity == "holm"
    with pytest.raises(ValueError, match="multiplicity: expected one of"):
        GateConfig(multiplicity="bonferroni")
    assert holm_levels([0.2, NAN, 0.01], 0.05) == [(2, 0.025), (3, 0.05), (1, 0.05 / 3)]
    kept = decide([], Incumbent("behavior", 5.0, 4.8, 5.2))
    assert not kept.promoted and kept.as_dict()["family"]["size"] == 0


# ------------------------------------------------------------------------------ simulation


def simulate(method, truths, se, resamples, nights, rho=0.5, seed=0):
    """Nights of ``len(truths)`` candidates with true gains ``truths`` (shares of the
    incumbent's value 100) under the gate (2% margin, no veto): the point gain is the truth
    plus normal error of standard deviation ``se`` (correlation ``rho`` between a night's
    candidates: shared incumbent and held-out episodes), and the ``resamples`` replicate
    differences scatter with the same standard deviation, so ``(gain - truth) / sd`` is
    Student's t with ``resamples - 1`` degrees of freedom, the p-values' assumption.

    Returns ``(false promotion rate, promotion rate of each candidate)``; a false promotion
    promotes a candidate whose true gain is at most the margin.
    """
    rng = np.random.default_rng(seed)
    value = 100.0
    gate = GateConfig(margin=0.02, veto_with=(), multiplicity=method)
    required = 0.02 * value
    promoted = np.zeros(len(truths))
    false = 0
    for _ in range(nights):
        incumbent = _incumbent(rng, resamples, value)
        common = rng.standard_normal()
        candidates = []
        for k, truth in enumerate(truths):
            noise = math.sqrt(rho) * common + math.sqrt(1 - rho) * rng.standard_normal()
            gain = truth * value + se * value * noise
            diffs = se * value * rng.standard_normal(resamples)
            candidates.append(_paired(f"c{k}", incumbent, diffs, gain=gain))
        decision = decide(candidates, incumbent, gate)
        if decision.promoted:
            k = int(decision.candidate[1:])
            promoted[k] += 1
            false += truths[k] * value <= required
    return false / nights, promoted / nights


def test_holm_bounds_the_false_promotion_rate_that_none_exceeds():
    # four candidates exactly at the margin (the least favourable truth for H0), independent
    fp_none, _ = simulate("none", [0.02] * 4, 0.01, 8, 600, rho=0.0, seed=1)
    fp_holm, _ = simulate("holm", [0.02] * 4, 0.01, 8, 600, rho=0.0, seed=1)
    assert fp_none > 0.12  # about 1 - 0.95 ** 4 = 0.19
    assert fp_holm < 0.05 + 3 * math.sqrt(0.05 * 0.95 / 600)


def main() -> None:
    nights = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    null = {  # every candidate not better by the margin: any promotion is a false one
        "3 at the margin (+2%), independent": ([0.02] * 3, 0.0),
        "4 at the margin (+2%), independent": ([0.02] * 4, 0.0),
        "6 at the margin (+2%), independent": ([0.02] * 6, 0.0),
        "4 at the margin (+2%), rho 0.5": ([0.02] * 4, 0.5),
        "4 as good as the incumbent (0%), rho 0.5": ([0.0] * 4, 0.5),
    }
    power = {
        "+5% alone": ([0.05], 0.5),
        "+5% and 3 at the margin, rho 0.5": ([0.05, 0.02, 0.02, 0.02], 0.5),
        "+5% and 3 at 0%, rho 0.5": ([0.05, 0.0, 0.0, 0.0], 0.5),
        "+5% and 5 at 0%, rho 0.5": ([0.05] + [0.0] * 5, 0.5),
    }
    print(f"{nights} nights per cell, seed 7; se: standard error of a gain (share of the "
          "incumbent's value); K: replicates; FP: false promotion rate; P(+5%): promotion rate "
          "of the +5% candidate")
    print(f"{'scenario':<42}{'se':>6}{'K':>4}{'FP none':>9}{'FP holm':>9}"
          f"{'P(+5%) none':>13}{'P(+5%) holm':>13}")
    cells = [(label, truths, rho, 0.01, k) for label, (truths, rho) in null.items()
             for k in (8, 32)]  # the null rates do not depend on se
    cells += [(label, truths, rho, se, k) for label, (truths, rho) in power.items()
              for se in (0.01, 0.015) for k in (8, 32)]
    for label, truths, rho, se, resamples in cells:
        row = [simulate(m, truths, se, resamples, nights, rho, seed=7) for m in ("none", "holm")]
        good = [f"{r[1][0]:13.3f}" if truths[0] == 0.05 else f"{'':>13}" for r in row]
        print(f"{label:<42}{se:6.3f}{resamples:4d}{row[0][0]:9.3f}{row[1][0]:9.3f}"
              f"{good[0]}{good[1]}", flush=True)


if __name__ == "__main__":
    main()
