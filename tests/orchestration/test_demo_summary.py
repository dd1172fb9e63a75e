"""The demo's comparison with simulator truth: selection figures and the printed summary."""

from __future__ import annotations

import pytest

from orchestration.cli import print_summary, selection_against_truth


def _cand(name, truth, dr):
    return {"name": name, "algorithm": name.upper(), "true_value": truth,
            "estimates": {"dr": {"value": dr, "low": dr - 1, "high": dr + 1}}}


CANDIDATES = [_cand("a", 12.0, 11.0), _cand("b", 9.0, 10.0), _cand("c", 15.0, 9.0)]


def test_selection_against_truth():
    # estimates rank a > b > c, truth c > a > b: rank correlation -0.5
    sel = selection_against_truth(10.0, CANDIDATES, promoted_truth=12.0)
    assert sel["estimator"] == "dr"
    assert sel["rank_correlation"] == pytest.approx(-0.5)
    assert sel["decision_regret"] == pytest.approx((15.0 - 12.0) / 10.0)
    kept = selection_against_truth(10.0, CANDIDATES, promoted_truth=None)
    assert kept["decision_regret"] == pytest.approx(0.5)
    # behaviour better than every candidate: keeping it leaves nothing on the table
    assert selection_against_truth(20.0, CANDIDATES, None)["decision_regret"] == 0.0
    two = selection_against_truth(0.0, CANDIDATES[:2], None)
    assert two["rank_correlation"] is None and two["decision_regret"] is None


def test_print_summary_shows_the_selection_figures(capsys):
    truth = {"selection": selection_against_truth(10.0, CANDIDATES, 12.0),
             "behavior_true_value": 10.0,
             "behavior_logged_value": {"value": 10.2, "low": 9.8, "high": 10.6},
             "candidates": CANDIDATES,
             "decision": {"promoted": True, "candidate": "a", "algorithm": "A",
                          "reasons": ["lower bound clears the bar"]},
             "promoted_true_value": 12.0, "export": None}
    print_summary({"seed": 0, "scenario": "default", "domains": {"cart": truth}}, wall=1.0)
    out = capsys.readouterr().out
    assert "rank correlation of dr with the true values -0.50" in out
    assert "the decision left 30.0% of the behaviour's true value on the table" in out
    assert "promoted policy true value 12.000 vs behaviour 10.000 (+20.0%)" in out
    truth["selection"] = selection_against_truth(0.0, CANDIDATES[:2], None)
    print_summary({"seed": 0, "scenario": "default", "domains": {"cart": truth}}, wall=1.0)
    assert "rank correlation of dr with the true values n/a; the decision left n/a" in \
        capsys.readouterr().out


def test_print_summary_explains_undefined_estimates_refits_and_regret(capsys):
    nan = float("nan")
    candidate = {"name": "a", "algorithm": "A", "true_value": 12.0,
                 "estimates": {"snpdis": {"value": nan, "low": nan, "high": nan},
                               "dr": {"value": 11.0, "low": 10.0, "high": 12.0}}}
    truth = {"selection": selection_against_truth(10.0, [candidate], 12.0),
             "behavior_true_value": 10.0,
             "behavior_logged_value": {"value": 10.2, "low": 9.8, "high": 10.6},
             "candidates": [candidate],
             "decision": {"promoted": True, "candidate": "a", "algorithm": "A",
                          "reasons": ["a: dr gain over incumbent +1.000 [+0.500, +1.500] "
                                      "(paired on 8 refit resamples): lower end > 2% margin"]},
             "promoted_true_value": 12.0, "export": None}
    print_summary({"seed": 0, "scenario": "default", "n_bootstrap": 500,
                   "domains": {"ads": truth}}, wall=1.0)
    out = capsys.readouterr().out
    assert "nan" not in out
    line = next(line for line in out.splitlines() if "snpdis" in line)
    words = line.split()
    assert words[words.index("snpdis") + 1] == "n/a"
    assert "no logged episode followed the candidate's actions through every step" in line
    assert "the 8 refit resamples are FQE's refits" in out
    assert "intervals above use 500 bootstrap resamples" in out
    assert "(decision regret: the best true value among the behaviour policy and the " \
           "candidates, minus the deployed policy's)" in out
