"""The OPE asset's metadata says whether the domain's held-out episodes could be replayed."""

from __future__ import annotations

from assets.evaluation import _replay_status
from offline_rl.domains import get_domain
from offline_rl.ope.diagnostics import Diagnostics
from offline_rl.ope.evaluate import PolicyEvaluation

DIAG = Diagnostics(ess=1.0, ess_fraction=1.0, per_decision_ess_fraction=1.0,
                   max_weight_share=0.0, rare_action_rate=0.0, action_match_rate=1.0)


def _evaluation(extra):
    return PolicyEvaluation("bc", {}, DIAG, 0.0, extra)


def test_replay_status_for_a_replayed_domain_only():
    inventory, cart = get_domain("inventory"), get_domain("cart")
    assert _replay_status(inventory, [_evaluation({"replay": "ok"})]) == {"replay": "ok"}
    why = "inventory replay: the logged decisions lack ['demand_7d_mean']"
    assert _replay_status(inventory, [_evaluation({"replay": why})]) == {"replay": why}
    assert _replay_status(inventory, [_evaluation({})]) == {"replay": "not computed"}
    assert _replay_status(cart, [_evaluation({"replay": "ok"})]) == {}
    assert _replay_status(inventory, []) == {}
