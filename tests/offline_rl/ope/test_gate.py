from offline_rl.ope.diagnostics import Diagnostics
from offline_rl.ope.estimators import Estimate
from offline_rl.ope.evaluate import PolicyEvaluation
from offline_rl.ope.gate import GateConfig, Incumbent, decide

HEALTHY = Diagnostics(ess=500.0, ess_fraction=0.05, per_decision_ess_fraction=0.2,
                      max_weight_share=0.01, rare_action_rate=0.0, action_match_rate=0.3)
INCUMBENT = Incumbent("behavior", value=5.0, low=4.8, high=5.2)


def _candidate(name, dr=(6.0, 5.5, 6.5), dm=6.0, snpdis=6.0, pdis=(6.0, 5.0, 7.0),
               diagnostics=HEALTHY):
    est = {"dr": Estimate("dr", *dr, 0.2), "dm": Estimate("dm", dm, dm - 0.1, dm + 0.1, 0.05),
           "snpdis": Estimate("snpdis", snpdis, snpdis - 1, snpdis + 1, 0.5),
           "pdis": Estimate("pdis", *pdis, 0.5)}
    return PolicyEvaluation(name, est, diagnostics, 0.5)


def test_promotes_the_passing_candidate_with_the_highest_lower_bound():
    decision = decide([_candidate("a", dr=(6.0, 5.3, 6.7)), _candidate("b", dr=(5.9, 5.6, 6.2))],
                      INCUMBENT, GateConfig(margin=0.02))
    assert decision.promoted and decision.candidate == "b"
    assert decision.reasons[0] == "promoted b over behavior"


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


def test_an_undefined_weight_share_does_not_block():
    no_full_support = Diagnostics(ess=0.0, ess_fraction=0.0, per_decision_ess_fraction=0.2,
                                  max_weight_share=float("nan"), rare_action_rate=0.0,
                                  action_match_rate=0.3)
    assert decide([_candidate("a", diagnostics=no_full_support)], INCUMBENT).promoted
