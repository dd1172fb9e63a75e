import dataclasses
import json
import math

import numpy as np
import pytest

from offline_rl.data.arrays import DecisionArrays
from offline_rl.ope.diagnostics import Diagnostics
from offline_rl.ope.estimators import Estimate
from offline_rl.ope.evaluate import (
    OPEConfig,
    PolicyEvaluation,
    behavior_replicates,
    refit_counts,
    student_t_quantile,
)
from offline_rl.ope.gate import GateConfig, Incumbent, decide, paired_gain, verify_promotion

HEALTHY = Diagnostics(ess=500.0, ess_fraction=0.05, per_decision_ess_fraction=0.2,
                      max_weight_share=0.01, rare_action_rate=0.0, action_match_rate=0.3)
INCUMBENT = Incumbent("behavior", value=5.0, low=4.8, high=5.2)


def _candidate(name, dr=(6.0, 5.5, 6.5), dm=6.0, snpdis=6.0, pdis=(6.0, 5.0, 7.0),
               diagnostics=HEALTHY):
    est = {"dr": Estimate("dr", *dr, 0.2), "dm": Estimate("dm", dm, dm - 0.1, dm + 0.1, 0.05),
           "snpdis": Estimate("snpdis", snpdis, snpdis - 1, snpdis + 1, 0.5),
           "pdis": Estimate("pdis", *pdis, 0.5)}
    return PolicyEvaluation(name, est, diagnostics, 0.5)


def test_promotes_the_passing_candidate_with_the_highest_estimate_or_lower_bound():
    both = [_candidate("a", dr=(6.0, 5.3, 6.7)), _candidate("b", dr=(5.9, 5.6, 6.2))]
    decision = decide(both, INCUMBENT, GateConfig(margin=0.02))
    assert decision.promoted and decision.candidate == "a"  # select_by="estimate"
    assert decision.reasons[0] == "promoted a over behavior"
    decision = decide(both, INCUMBENT, GateConfig(margin=0.02, select_by="lower_bound"))
    assert decision.candidate == "b"
    with pytest.raises(ValueError, match="select_by: expected 'estimate' or 'lower_bound'"):
        GateConfig(select_by="median")


def test_lower_bound_must_clear_the_margin():
    decision = decide([_candidate("a", dr=(6.0, 5.09, 6.9))], INCUMBENT, GateConfig(margin=0.02))
    assert not decision.promoted
    assert any("does not exceed incumbent 5.000 + 2% margin = 5.100" in r
               for r in decision.reasons)


def test_unhealthy_weights_block_promotion():
    weak = Diagnostics(ess=3, ess_fraction=0.0003, per_decision_ess_fraction=0.001,
                       max_weight_share=0.6, rare_action_rate=0.5, action_match_rate=0.01)
    decision = decide([_candidate("a", diagnostics=weak)], INCUMBENT)
    assert not decision.promoted
    text = " ".join(decision.reasons)
    assert "per-decision ESS fraction" in text and "importance weight" in text


def test_the_weight_share_limit_is_the_gates_or_the_domains_calibrated_one():
    from offline_rl.domains import get_domain
    from offline_rl.domains.base import Domain
    from offline_rl.ope.gate import DEFAULT_MAX_WEIGHT_SHARE

    concentrated = dataclasses.replace(HEALTHY, max_weight_share=0.4)
    candidate = [_candidate("a", diagnostics=concentrated)]
    assert GateConfig().max_weight_share is None
    assert GateConfig().weight_share_limit == DEFAULT_MAX_WEIGHT_SHARE == 0.25
    refused = decide(candidate, INCUMBENT)
    assert not refused.promoted
    assert any("one episode holds 40.0% of the importance weight (> 25%)" in r
               for r in refused.reasons)
    # a domain calibrated to 1.0 turns the check off; a gate setting of its own wins
    assert decide(candidate, INCUMBENT, GateConfig().for_domain(1.0)).promoted
    assert GateConfig().for_domain(None).max_weight_share == 0.25
    assert GateConfig(max_weight_share=0.3).for_domain(1.0).max_weight_share == 0.3
    assert get_domain("recommendation").gate_max_weight_share == 1.0
    assert get_domain("inventory").gate_max_weight_share is None
    with pytest.raises(ValueError, match="gate_max_weight_share must be in"):
        dataclasses.replace(get_domain("cart"), gate_max_weight_share=0.0)
    assert isinstance(get_domain("cart"), Domain)


def test_an_importance_sampling_interval_below_the_bar_vetoes():
    # pdis interval [3, 5.1] ends at the bar 5.1: a confident contradiction
    decision = decide([_candidate("a", pdis=(4.0, 3.0, 5.1))], INCUMBENT)
    assert not decision.promoted
    assert "a: pdis interval [3.000, 5.100] lies below the bar 5.100 (estimators contradict)" \
        in decision.reasons
    # a low point estimate whose interval reaches above the bar is noise, not a veto
    assert decide([_candidate("a", pdis=(4.0, 3.0, 5.2), snpdis=4.0, dm=4.5)],
                  INCUMBENT).promoted
    # no finite interval: no veto
    nan = float("nan")
    assert decide([_candidate("a", pdis=(nan, nan, nan))], INCUMBENT).promoted


def test_confirming_estimators_must_beat_the_incumbent_when_asked():
    decision = decide([_candidate("a", dm=4.0)], INCUMBENT, GateConfig(confirm_with=("dm",)))
    assert not decision.promoted
    assert any("dm estimate 4.000 does not beat the incumbent 5.000 (estimators contradict)"
               in r for r in decision.reasons)
    assert decide([_candidate("a", dm=4.0)], INCUMBENT).promoted  # not by default


def test_decision_serialises_every_number():
    d = decide([_candidate("a")], INCUMBENT).as_dict()
    assert d["incumbent"]["value"] == 5.0
    assert d["verdicts"][0]["lower_bound"] == 5.5
    assert d["config"]["headline"] == "dr"
    assert d["config"]["veto_with"] == ("pdis",) and d["config"]["confirm_with"] == ()
    # rule 1's family: Holm over every candidate at one-sided alpha / 2, and each verdict's
    # p-value, the level it was tested at and its bound there (a family of one: alpha / 2)
    assert d["config"]["multiplicity"] == "holm"
    assert d["family"] == {"method": "holm", "alpha": 0.1, "level": 0.05, "size": 1}
    verdict = d["verdicts"][0]
    assert verdict["level"] == 0.05 and verdict["adjusted_lower_bound"] == 5.5
    assert 0 < verdict["p_value"] < 0.05


def test_an_undefined_weight_share_blocks_while_the_limit_is_active():
    no_full_support = Diagnostics(ess=0.0, ess_fraction=0.0, per_decision_ess_fraction=0.2,
                                  max_weight_share=float("nan"), rare_action_rate=0.0,
                                  action_match_rate=0.3)
    candidate = [_candidate("a", diagnostics=no_full_support)]
    for gate in (GateConfig(), GateConfig().for_domain(None), GateConfig(max_weight_share=0.9)):
        refused = decide(candidate, INCUMBENT, gate)
        assert not refused.promoted and not refused.verdicts[0].passed
        limit = f"{gate.weight_share_limit:.0%}"
        assert ("a: weight share (max_weight_share) is undefined (nan: the trajectory "
                "importance weights sum to 0, no logged episode followed the candidate to its "
                f"end), so nothing shows that no episode holds more than {limit} of the "
                "importance weight") in refused.reasons
    # a limit of 1 turns the check off: an undefined share does not block then
    for gate in (GateConfig().for_domain(1.0), GateConfig(max_weight_share=1.0)):
        decision = decide(candidate, INCUMBENT, gate)
        assert decision.promoted
        assert not any("max_weight_share" in r for r in decision.reasons)
    # nor where the headline uses no importance weights
    replayed = dataclasses.replace(candidate[0], estimates={
        **candidate[0].estimates, "replay": Estimate("replay", 6.0, 5.6, 6.4, 0.2)})
    assert decide([replayed], INCUMBENT, GateConfig(headline="replay")).promoted


def test_an_undefined_per_decision_ess_fails_the_healthy_weights_rule():
    undefined = dataclasses.replace(HEALTHY, per_decision_ess_fraction=float("nan"))
    for gate in (GateConfig(), GateConfig().for_domain(1.0)):
        refused = decide([_candidate("a", diagnostics=undefined)], INCUMBENT, gate)
        assert not refused.promoted
        assert ("a: per-decision ESS fraction (per_decision_ess_fraction) is undefined (nan), "
                "so it does not reach the minimum 0.02") in refused.reasons
    low = dataclasses.replace(HEALTHY, per_decision_ess_fraction=0.01)
    assert "a: per-decision ESS fraction 0.0100 < 0.02" in decide(
        [_candidate("a", diagnostics=low)], INCUMBENT).reasons


def _with_replicates(candidate, values, alpha=0.1):
    extra = {"refit_replicates": {"alpha": alpha, "values": {"dr": list(values)}}}
    return PolicyEvaluation(candidate.name, candidate.estimates, candidate.diagnostics,
                            candidate.disagreement, extra)


def test_paired_gain_promotes_what_the_unpaired_interval_cannot_separate():
    # dr 5.6 with interval [4.9, 6.3] overlaps the bar 5.1, but on every shared resample the
    # candidate beats the incumbent by 0.55-0.65: the held-out episodes' luck cancels
    incumbent = Incumbent("behavior", 5.0, 4.6, 5.4, replicates=(4.6, 5.4, 5.0, 4.8, 5.2))
    diffs = np.array([0.6, 0.55, 0.65, 0.6, 0.6])
    cand = _with_replicates(_candidate("a", dr=(5.6, 4.9, 6.3)),
                            np.array(incumbent.replicates) + diffs)
    assert not decide([cand], Incumbent("behavior", 5.0, 4.6, 5.4)).promoted  # unpaired
    assert not decide([cand], incumbent, GateConfig(paired=False)).promoted
    decision = decide([cand], incumbent)
    assert decision.promoted and decision.candidate == "a"
    half = student_t_quantile(0.95, 4) * diffs.std(ddof=1)
    assert decision.verdicts[0].lower_bound == pytest.approx(5.0 + 0.6 - half)
    assert any(r.startswith("a: dr gain over incumbent +0.600 [") and "paired on 5 refit "
               "resamples" in r and "lower end > 2% margin = +0.100" in r
               for r in decision.reasons)


def test_paired_gain_must_clear_the_margin_and_falls_back_without_pairs():
    incumbent = Incumbent("behavior", 5.0, 4.6, 5.4, replicates=(4.6, 5.4, 5.0, 4.8))
    noisy = _with_replicates(_candidate("a", dr=(5.3, 5.2, 5.4)), (4.7, 5.9, 5.0, 5.6))
    decision = decide([noisy], incumbent)
    assert not decision.promoted  # diffs 0.1, 0.5, 0.0, 0.8: the gain's lower end is < 0.1
    assert any("lower end does not exceed the 2% margin = +0.100" in r for r in decision.reasons)
    # replicates that do not pair up (other resamples): the unpaired rule decides
    other = _with_replicates(_candidate("a", dr=(5.3, 5.2, 5.4)), (4.7, 5.9, 5.0))
    decision = decide([other], incumbent)
    assert decision.promoted
    assert "a: dr lower bound 5.200 > incumbent 5.000 + 2% margin = 5.100" in decision.reasons
    nan = float("nan")
    assert paired_gain(5.3, (nan, 5.0, nan, nan), incumbent, 0.1) is None  # one finite pair


def test_behavior_replicates_are_the_on_policy_value_on_the_refit_resamples():
    arrays = DecisionArrays(
        observations=np.zeros((5, 1), dtype=np.float32), actions=np.zeros(5, dtype=np.int64),
        rewards=np.array([1.0, 2.0, 4.0, 8.0, 16.0], dtype=np.float32),
        terminals=np.array([0, 1, 0, 1, 1], dtype=np.float32),
        timeouts=np.zeros(5, np.float32), behavior_prob=np.ones(5),
        episode=np.array([0, 0, 1, 1, 2]), step=np.array([0, 1, 0, 1, 0]))
    config = OPEConfig(n_bootstrap=10, fqe_refits=4, gamma=0.5)
    counts = refit_counts(arrays, config)
    assert counts.shape == (4, 3) and (counts.sum(axis=1) == 3).all()
    returns = np.array([1 + 0.5 * 2, 4 + 0.5 * 8, 16])
    np.testing.assert_allclose(behavior_replicates(arrays, config), counts @ returns / 3)
    # the same resamples for every policy evaluated with that config, none without refits
    np.testing.assert_array_equal(refit_counts(arrays, config), counts)
    assert behavior_replicates(arrays, OPEConfig(fqe_refits=0)) == []


def test_a_veto_needs_episodes_that_followed_the_candidate_to_the_end():
    cfg = GateConfig(veto_min_ess=10)
    low_pdis = {"pdis": (4.0, 3.0, 5.1)}  # wholly below the bar 5.1
    for ess in (3.0, float("nan")):  # few or no logged episodes support the late steps
        unsupported = dataclasses.replace(HEALTHY, ess=ess)
        decision = decide([_candidate("a", diagnostics=unsupported, **low_pdis)], INCUMBENT, cfg)
        assert decision.promoted
        assert any(r.startswith("a: pdis interval [3.000, 5.100] lies below the bar 5.100, but "
                                f"only {ess:.1f} effective episodes (< 10) followed the "
                                "candidate to the end: no veto") for r in decision.reasons)
    supported = dataclasses.replace(HEALTHY, ess=10.0)
    decision = decide([_candidate("a", diagnostics=supported, **low_pdis)], INCUMBENT, cfg)
    assert not decision.promoted
    assert "a: pdis interval [3.000, 5.100] lies below the bar 5.100 (estimators contradict)" \
        in decision.reasons


def test_a_recorded_promotion_is_reverified_from_its_own_numbers():
    # a paired promotion whose own dr interval reaches below the bar is backed by its gain
    incumbent = Incumbent("behavior", 5.0, 4.6, 5.4, replicates=(4.6, 5.4, 5.0, 4.8, 5.2))
    cand = _with_replicates(_candidate("a", dr=(5.6, 4.9, 6.3)),
                            np.array(incumbent.replicates) + [0.6, 0.55, 0.65, 0.6, 0.6])
    evidence = json.loads(json.dumps(decide([cand], incumbent).as_dict(), default=str))
    ok, lower, bar = verify_promotion(evidence)
    assert ok and bar == pytest.approx(5.1) and lower > bar
    evidence["verdicts"][0]["lower_bound"] = 5.05  # a record that does not back its promotion
    assert not verify_promotion(evidence)[0]
    kept = json.loads(json.dumps(decide([cand], incumbent, GateConfig(margin=1.0)).as_dict(),
                                 default=str))
    assert verify_promotion(kept)[0] and not kept["promoted"]


def test_the_headline_is_the_gates_or_the_domains_and_replay_needs_no_weight_checks():
    from offline_rl.domains import get_domain

    weak = Diagnostics(ess=3, ess_fraction=0.0003, per_decision_ess_fraction=0.001,
                       max_weight_share=0.6, rare_action_rate=0.5, action_match_rate=0.01)
    replayed = _candidate("a", dr=(5.0, 4.0, 6.0), diagnostics=weak)
    replayed.estimates["replay"] = Estimate("replay", 6.0, 5.6, 6.4, 0.2)
    inventory = get_domain("inventory")
    assert inventory.gate_headline == "replay" and get_domain("cart").gate_headline == "dr"
    gate = GateConfig().for_domain(inventory.gate_max_weight_share, inventory.gate_headline)
    assert gate.headline == "replay" and gate.max_weight_share == 0.25
    decision = decide([replayed], INCUMBENT, gate)
    # importance weights do not enter the replay estimate: their diagnostics do not block
    assert decision.promoted and decision.config.headline == "replay"
    assert any("replay lower bound 5.600 > incumbent 5.000" in r for r in decision.reasons)
    # the same candidate judged on doubly robust is refused (interval and weights)
    assert not decide([replayed], INCUMBENT, GateConfig()).promoted
    assert decide([replayed], INCUMBENT, GateConfig()).config.headline == "dr"
    # a gate's own headline wins over the domain's
    assert GateConfig(headline="dm").for_domain(None, "replay").headline == "dm"
    # without a replay estimate the candidate stays out, with the reason it has none
    missing = dataclasses.replace(_candidate("b"), extra={"replay": "no demand logged"})
    refused = decide([missing], INCUMBENT, gate)
    assert not refused.promoted
    assert "b: no replay estimate (no demand logged)" in refused.reasons


def test_an_incumbent_without_a_value_is_kept_and_no_candidate_is_judged():
    from offline_rl.ope.gate import evaluated_incumbent

    production = dataclasses.replace(_candidate("incumbent:cql@2026-10-01"),
                                     extra={"replay": "no demand logged"})
    missing = evaluated_incumbent(production, "replay")
    assert math.isnan(missing.value) and missing.replicates == ()
    assert missing.unavailable == ("the incumbent incumbent:cql@2026-10-01 has no replay "
                                   "estimate (no demand logged)")
    decision = decide([_candidate("a", dr=(9.0, 8.5, 9.5))], missing, GateConfig())
    assert not decision.promoted and decision.verdicts == []
    assert decision.reasons == [f"kept incumbent incumbent:cql@2026-10-01: {missing.unavailable}"
                                ", so no candidate can be judged against it"]
    assert verify_promotion(json.loads(json.dumps(decision.as_dict(), default=str)))[0]
    # a NaN value without a recorded reason is kept too
    nan = float("nan")
    assert not decide([_candidate("a")], Incumbent("behavior", nan, nan, nan)).promoted
    # with the estimate: its value, interval and refit replicates
    found = evaluated_incumbent(_with_replicates(production, (5.9, 6.1)), "dr")
    assert (found.value, found.low, found.high, found.replicates) == (6.0, 5.5, 6.5, (5.9, 6.1))
    assert found.unavailable is None
