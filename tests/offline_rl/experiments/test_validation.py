"""Tests of validate-ope: its figures on hand-made runs, its policies, and a tiny real run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from offline_rl.experiments.validation.figures import (
    clopper_pearson_upper,
    constructed_figures,
    estimator_figures,
    gate_figures,
    power_curve,
    spearman,
    summarise,
)
from offline_rl.experiments.validation.policies import (
    BlendPolicy,
    EarlyLatePolicy,
    MixturePolicy,
    PerturbedPolicy,
    RarePolicy,
    SpibbPolicy,
    ValueGreedyPolicy,
    near_bar_blend,
    progress_step,
)
from offline_rl.experiments.validation.results import replay_gate
from offline_rl.experiments.validation.run import ValidationConfig, run_seeds
from offline_rl.experiments.validation.scenarios import (
    DEFAULT_SCENARIOS,
    NIGHTLY_TRAIN_BATCH_SIZE,
    NIGHTLY_TRAIN_STEPS,
    VALIDATION_FQE_STEPS,
    VALIDATION_SCENARIOS,
    GreedierBehavior,
)
from offline_rl.ope.gate import GateConfig


def _cand(name, true, value, low, high):
    return {"name": name, "true_value": true,
            "estimates": {"dr": {"value": value, "low": low, "high": high, "stderr": 0.1}}}


def _run(domain, candidates, promoted=None, bar=10.0, scenario="default"):
    truths = {c["name"]: c["true_value"] for c in candidates}
    improving = [n for n, t in truths.items() if t > bar]
    return {"domain": domain, "scenario": scenario, "candidates": candidates, "bar": bar,
            "behavior": {"true_value": bar}, "decision": {
        "promoted": promoted is not None, "candidate": promoted,
        "promoted_true_value": truths[promoted] if promoted else None,
        "false_promotion": promoted is not None and truths[promoted] <= bar,
        "improvement_available": bool(improving),
        "missed_improvement": promoted is None and bool(improving)}}


RUNS = [
    # errors 10%, 20%, 50%; truth in the first two intervals; estimates ordered like truth
    _run("a", [_cand("x", 10.0, 11.0, 9.0, 12.0), _cand("y", 20.0, 16.0, 15.0, 21.0),
               _cand("z", 4.0, 2.0, 2.5, 3.0)], promoted="y"),
    # order reversed (rho = -1); a false promotion (truth 8 <= bar 10)
    _run("a", [_cand("x", 1.0, 3.0, 2.0, 4.0), _cand("y", 2.0, 2.0, 1.0, 3.0),
               _cand("z", 8.0, 1.0, 0.0, 2.0)], promoted="z"),
    # kept the incumbent although x is truly better than the bar: a missed improvement
    _run("b", [_cand("x", 12.0, 12.0, math.nan, math.nan), _cand("y", 5.0, math.nan, 0, 1)],
         scenario="small_data"),
]


def test_spearman_matches_hand_computed_ranks_with_ties():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ranks x: 0, 1.5, 1.5, 3; y: 0, 1, 2, 3 -> pearson of the ranks
    rx, ry = np.array([0, 1.5, 1.5, 3]), np.arange(4.0)
    expected = np.corrcoef(rx, ry)[0, 1]
    assert spearman([1, 2, 2, 5], [1, 2, 3, 4]) == pytest.approx(expected)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2], [1, 2, 3])


def test_spearman_ranks_nan_above_every_number_and_warns_about_nothing():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # ranks x: 0, 1, 3, 2 (NaN last); y: 0, 1, 2, 3
        assert spearman([1, 2, math.nan, 4], [1, 2, 3, 4]) == pytest.approx(0.8)
        # the two NaNs tie: ranks x: 0, 2.5, 2.5, 1
        expected = np.corrcoef([0, 2.5, 2.5, 1], [3, 2, 1, 0])[0, 1]
        assert spearman([1, math.nan, math.nan, 4], [4, 3, 2, 1]) == pytest.approx(expected)
        assert math.isnan(spearman([2.0, 2.0], [1, 2])) and math.isnan(spearman([1], [1]))


def test_estimator_figures_on_hand_made_runs():
    fig = estimator_figures(RUNS, "dr")
    # relative errors: .1, .2, .5, 2, 0, .875, 0 (y of run 3 has no finite estimate)
    assert fig["median_relative_error"] == pytest.approx(0.2)
    assert fig["estimates"] == 7
    # runs 1 and 2 have three finite estimates: rho = +1 and -1
    assert fig["rank_correlation"] == pytest.approx(0.0) and fig["ranked_runs"] == 2
    # intervals (finite only): covered x, y; not z; not x (2..4 vs 1); y (1..3 vs 2); not z
    assert fig["interval_coverage"] == pytest.approx(3 / 6)
    # without a margin every pair with finite estimates counts: 3 right in run 1, 0 in run 2
    assert fig["pairwise_accuracy"] == pytest.approx(3 / 6)
    assert fig["distinguishable_pairs"] == 6
    # top estimate: y (truth 20, the best) in run 1; x (truth 1, best 8) in run 2: 7 / 10 of
    # the behaviour's truth; x, the only finite estimate and the best (12), in run 3
    assert fig["selection_regret"] == pytest.approx((0 + 0.7 + 0) / 3)


def test_pairwise_accuracy_counts_only_pairs_a_margin_apart():
    # behaviour truth 10, margin 0.15: pairs whose truths differ by more than 1.5 count
    run = _run("a", [_cand("x", 10.0, 3.0, 0, 0), _cand("y", 11.0, 2.0, 0, 0),
                     _cand("z", 14.0, 2.0, 0, 0), _cand("w", 4.0, 1.0, 0, 0)])
    fig = estimator_figures([run], "dr", margin=0.15)
    # x-y (1.0 apart) is left out although its order is wrong; x-z wrong, y-z a tie in the
    # estimates (wrong), x-w, y-w, z-w right
    assert fig["distinguishable_pairs"] == 5
    assert fig["pairwise_accuracy"] == pytest.approx(3 / 5)
    assert math.isnan(estimator_figures([run], "dr", margin=10.0)["pairwise_accuracy"])


def test_gate_figures_count_false_promotions_and_missed_improvements():
    g = gate_figures(RUNS)
    # regret against the best of behaviour (10) and candidates: run 1 promoted the best (20);
    # run 2 promoted z (8) below the behaviour: 2 / 10; run 3 kept 10 with x at 12: 2 / 10
    curve = g.pop("power_curve")
    assert g == {"decisions": 3, "promotions": 2, "false_promotions": 1,
                 "improvements_available": 2, "missed_improvements": 1,
                 "false_promotion_rate": pytest.approx(1 / 3),
                 "missed_improvement_rate": pytest.approx(1 / 2),
                 "false_promotion_upper": pytest.approx(clopper_pearson_upper(1, 3)),
                 "improvements_beyond_zone": 0, "missed_beyond_zone": 0,
                 "missed_beyond_zone_rate": pytest.approx(math.nan, nan_ok=True),
                 "missed_beyond_zone_upper": pytest.approx(math.nan, nan_ok=True),
                 "decision_regret": pytest.approx(0.4 / 3)}
    # best gains over the incumbent (10): +100% (promoted), -20% (promoted), +20% (kept)
    assert [(b["decisions"], b["promotions"]) for b in curve if b["decisions"]] == [
        (1, 1), (2, 1)]
    summary = summarise(RUNS, ["dr"])
    assert summary["overall"]["scenarios"] == 3 and summary["overall"]["decisions"] == 3
    assert summary["per_domain"]["a"]["gate"]["false_promotions"] == 1
    assert summary["per_domain"]["b"]["gate"]["missed_improvements"] == 1
    scenarios = summary["per_scenario"]
    assert {k: v["runs"] for k, v in scenarios.items()} == {"default": 2, "small_data": 1}
    assert scenarios["default"]["gate"]["false_promotions"] == 1
    assert scenarios["default"]["headline"]["rank_correlation"] == pytest.approx(0.0)
    assert scenarios["small_data"]["gate"]["missed_improvements"] == 1


def test_headline_figures_follow_each_runs_gate_headline():
    """A domain deciding on ``replay`` is scored on replay; the others on ``dr``."""
    replayed = _run("c", [_cand("x", 1.0, 9.0, 0, 20), _cand("y", 2.0, 8.0, 0, 20),
                          _cand("z", 3.0, 7.0, 0, 20)])  # dr: order reversed
    for cand, value in zip(replayed["candidates"], (1.1, 2.2, 2.7), strict=True):
        cand["estimates"]["replay"] = {"value": value, "low": value - 1, "high": value + 1,
                                       "stderr": 0.1}
    replayed["headline"] = "replay"
    summary = summarise([*RUNS, replayed], ["dr"])
    assert summary["headline"] == {"a": "dr", "b": "dr", "c": "replay"}
    assert "replay" in summary["per_domain"]["c"]["estimators"]
    assert "replay" not in summary["per_domain"]["a"]["estimators"]
    # runs 1 and 2 (dr) give +1 and -1, the replayed run +1 (dr alone would say -1)
    assert summary["overall"]["rank_correlation"] == pytest.approx(1 / 3)
    assert estimator_figures([replayed], "dr")["rank_correlation"] == pytest.approx(-1.0)
    assert estimator_figures([replayed], None)["rank_correlation"] == pytest.approx(1.0)


class _Sim:
    n_actions = 3

    def behavior_probs(self, state):
        return np.tile([0.2, 0.5, 0.3], (state, 1))


def test_greedier_behavior_moves_mass_to_the_favourite_action():
    sim = GreedierBehavior(_Sim(), 0.9)
    probs = sim.behavior_probs(2)
    np.testing.assert_allclose(probs, [[0.02, 0.95, 0.03]] * 2)
    assert sim.n_actions == 3  # everything else is the wrapped simulator's


def test_rare_policy_takes_the_least_logged_allowed_action():
    logged = np.array([0, 0, 0, 1, 1, 2])  # action 2 rarest, then 1
    obs = np.array([[1.0, 1.0, 1.0, 0.3], [1.0, 1.0, 0.0, 0.3], [1.0, 0.0, 0.0, 0.3]])
    assert RarePolicy(logged, 3, None).predict(obs).tolist() == [2, 2, 2]
    assert RarePolicy(logged, 3, [0, 1, 2]).predict(obs).tolist() == [2, 1, 0]


class _Base:
    has_values = True
    mask_indices = None

    def action_values(self, obs):
        return np.tile([1.0, 3.0, 2.0], (obs.shape[0], 1))


def test_perturbed_policy_is_deterministic_and_takes_the_worst_action_in_its_share():
    obs = np.random.default_rng(0).random((2000, 5)).astype(np.float32)
    policy = PerturbedPolicy(_Base(), 0.3, seed=1)
    actions = policy.predict(obs)
    assert set(actions.tolist()) == {0, 1}  # worst (0) or greedy (1)
    assert np.mean(actions == 0) == pytest.approx(0.3, abs=0.04)
    np.testing.assert_array_equal(actions, policy.predict(obs))


def test_run_seeds_differ_by_domain_scenario_and_seed():
    a = run_seeds(0, "recommendation", "default")
    assert a == run_seeds(0, "recommendation", "default")
    assert a != run_seeds(1, "recommendation", "default")
    assert a != run_seeds(0, "cart", "default")
    assert len(set(a.values())) == len(a)


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown validation scenario"):
        ValidationConfig(scenarios=("nope",))
    with pytest.raises(ValueError, match="unknown constructed candidate"):
        ValidationConfig(constructed=("best",))
    with pytest.raises(ValueError, match="unknown candidate algorithm"):
        ValidationConfig(candidates=("sac",)).check()
    with pytest.raises(ValueError, match="unknown domain 'atlantis'"):
        ValidationConfig(domains=("atlantis",)).check()
    assert set(VALIDATION_SCENARIOS) >= {"default", "small_data", "near_deterministic"}


def test_the_command_runs_the_constructed_candidates_it_is_given(monkeypatch, capsys):
    from offline_rl.cli import main
    from offline_rl.experiments.validation import run as run_module
    from offline_rl.experiments.validation.scenarios import CONSTRUCTED

    seen = []

    def fake_run(cfg, progress=None, checkpoint=None):
        seen.append(cfg.constructed)
        raise SystemExit(0)

    monkeypatch.setattr(run_module, "run_validation", fake_run)
    for flags, expected in (([], CONSTRUCTED), (["--constructed", "mixture", "spibb"],
                                                 ("mixture", "spibb")),
                            (["--constructed"], ())):
        with pytest.raises(SystemExit):
            main(["validate-ope", "--domains", "cart", *flags])
        assert seen.pop() == expected
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["validate-ope", "--constructed", "best"])
    assert "invalid choice: 'best'" in capsys.readouterr().err


def test_validate_ope_command_on_a_tiny_configuration(tmp_path, capsys):
    from offline_rl.cli import main

    out = tmp_path / "validation.json"
    code = main(["validate-ope", "--domains", "recommendation", "--scenarios", "default",
                 "--seeds", "2", "--candidates", "double_dqn", "--train-steps", "20",
                 "--fqe-steps", "40", "--truth-episodes", "400", "--episode-scale", "0.01",
                 "--json", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert "[2/2] recommendation/default seed 1" in captured.err
    assert "overall (the gate's headline estimators, marked *: recommendation dr)" in captured.out
    assert "power curve: promotions by the best candidate's true gain" in captured.out
    result = json.loads(out.read_text())
    overall = result["overall"]
    assert "fqe_greedy" in result["constructed"] and "\nfqe_greedy " in captured.out
    assert "fqe_greedy is tuned on the held-out episodes, outside the gate's guarantee" \
        in captured.out
    assert "decisions are the gate's over the trained candidates" in captured.out
    assert result["constructed"]["fqe_greedy"]["runs"] == 2
    assert set(overall) == {"scenarios", "decisions", "median_relative_error",
                            "rank_correlation", "pairwise_accuracy", "interval_coverage",
                            "false_promotion_rate", "false_promotion_upper",
                            "missed_improvement_rate", "missed_beyond_zone_rate",
                            "missed_beyond_zone_upper", "selection_regret", "decision_regret",
                            "gain_lower_coverage"}
    for basis in ("refits", "episodes"):
        cover = overall["gain_lower_coverage"][basis]
        assert cover["pairs"] >= 2 * 3 and cover["nominal"] == pytest.approx(0.95)
        assert 0 <= cover["covered"] <= cover["pairs"]
    assert overall["selection_regret"] >= 0.0 and overall["decision_regret"] >= 0.0
    assert "near_deterministic" not in captured.out and "\ndefault " in captured.out
    assert result["per_scenario"]["default"]["runs"] == 2
    assert overall["scenarios"] == overall["decisions"] == len(result["runs"]) == 2
    for key in ("interval_coverage", "false_promotion_rate", "missed_improvement_rate"):
        assert 0.0 <= overall[key] <= 1.0, key
    assert overall["median_relative_error"] >= 0.0
    assert -1.0 <= overall["rank_correlation"] <= 1.0
    gate = result["per_domain"]["recommendation"]["gate"]
    assert gate["decisions"] == 2
    assert gate["false_promotions"] <= gate["promotions"] <= gate["decisions"]
    assert gate["missed_improvements"] <= gate["improvements_available"] <= gate["decisions"]
    assert set(result["per_domain"]["recommendation"]["estimators"]) == {
        "ipw", "snipw", "pdis", "snpdis", "dm", "dr", "sndr"}
    for run in result["runs"]:
        assert run["eval_episodes"] == 100
        names = [c["name"] for c in run["candidates"]]
        assert names[:6] == ["double_dqn", "worse", "rare", "spibb", "mixture", "fqe_greedy"]
        assert set(names[6:]) <= {"near_bar_above", "near_bar_below", "early_late"}
        assert 0.0 <= run["spibb"]["fallback_share"] <= 1.0
        d = run["decision"]
        assert d["false_promotion"] == (d["promoted"] and d["promoted_true_value"] <= run["bar"])
        # decided as the nightly job decides: among the trained candidates; each constructed
        # one in a night that adds it
        assert d["candidate"] in (None, "double_dqn")
        for c in run["candidates"]:
            assert ("promoted_when_added" in c) == (c["kind"] == "constructed"), c["name"]
        assert all(math.isfinite(c["true_value"]) for c in run["candidates"])
    # the run's own numbers reproduce the headline figure
    assert overall["median_relative_error"] == pytest.approx(
        estimator_figures(result["runs"], "dr")["median_relative_error"])
    # replaying the stored runs with the same gate reproduces every decision; another gate
    # re-decides them from the same estimates
    replayed = tmp_path / "replayed.json"
    assert main(["validate-ope", "--replay", str(out), "--json", str(replayed)]) == 0
    again = json.loads(replayed.read_text())
    assert [r["decision"] for r in again["runs"]] == [r["decision"] for r in result["runs"]]
    assert again["overall"] == overall
    assert all(run["behavior"]["refit_replicates"] for run in result["runs"])
    strict = replay_gate(result, GateConfig(margin=100.0))
    assert not any(r["decision"]["promoted"] for r in strict["runs"])
    assert all(r["bar"] == pytest.approx(101 * r["behavior"]["true_value"])
               for r in strict["runs"])
    assert strict["config"]["gate"]["margin"] == 100.0
    limited = tmp_path / "limited.json"
    assert main(["validate-ope", "--replay", str(out), "--max-weight-share", "0.5",
                 "--json", str(limited)]) == 0
    assert json.loads(limited.read_text())["config"]["gate"]["max_weight_share"] == 0.5
    assert again["config"]["gate"]["max_weight_share"] is None  # each domain's own limit
    assert again["config"]["gate"]["multiplicity"] == "holm"
    each = tmp_path / "each.json"
    assert main(["validate-ope", "--replay", str(out), "--multiplicity", "none",
                 "--json", str(each)]) == 0
    assert json.loads(each.read_text())["config"]["gate"]["multiplicity"] == "none"
    # re-decided without some candidates: a night that never evaluated them
    fewer = tmp_path / "fewer.json"
    assert main(["validate-ope", "--replay", str(out), "--without", "fqe_greedy", "spibb",
                 "--json", str(fewer)]) == 0
    reduced = json.loads(fewer.read_text())
    assert reduced["config"]["without"] == ["fqe_greedy", "spibb"]
    for run, full in zip(reduced["runs"], result["runs"], strict=True):
        assert [c["name"] for c in run["candidates"]] == [
            c["name"] for c in full["candidates"] if c["name"] not in ("fqe_greedy", "spibb")]
    assert "fqe_greedy" not in reduced["constructed"]
    capsys.readouterr()
    assert main(["validate-ope", "--without", "spibb"]) == 2
    assert "--without re-decides stored runs" in capsys.readouterr().err
    # every candidate's gain over the incumbent paired per episode is stored, so the runs can
    # be re-decided on it
    for run in result["runs"]:
        for c in run["candidates"]:
            gain = c["episode_gains"]["behavior"]["dr"]
            assert gain["n"] == run["eval_episodes"] and gain["se"] > 0
            assert gain["gain"] == pytest.approx(
                c["estimates"]["dr"]["value"] - run["behavior"]["value"])
    by_episodes = tmp_path / "by_episodes.json"
    assert main(["validate-ope", "--replay", str(out), "--paired-by", "episodes",
                 "--json", str(by_episodes)]) == 0
    assert json.loads(by_episodes.read_text())["config"]["gate"]["paired_by"] == "episodes"
    on_dm = tmp_path / "on_dm.json"
    assert main(["validate-ope", "--replay", str(out), "--headline", "dm",
                 "--json", str(on_dm)]) == 0
    decided = json.loads(on_dm.read_text())
    assert decided["headline"] == {"recommendation": "dm"}
    assert all(r["headline"] == "dm" for r in decided["runs"])
    assert decided["overall"]["median_relative_error"] == pytest.approx(
        result["per_domain"]["recommendation"]["estimators"]["dm"]["median_relative_error"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["validate-ope", "--replay", str(out), "--max-weight-share", "1.5"])
    assert "must be a share in (0, 1]: 1.5" in capsys.readouterr().err
    assert main(["validate-ope", "--replay", str(out), str(out), "--json", str(each)]) == 0
    assert json.loads(each.read_text())["overall"]["decisions"] == 4  # two files, merged
    assert main(["validate-ope", "--replay", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot replay it (FileNotFoundError" in capsys.readouterr().err


def test_clopper_pearson_upper_bounds():
    # 0 events: 1 - 0.05 ** (1 / n); the figures the docs quote
    assert clopper_pearson_upper(0, 30) == pytest.approx(1 - 0.05 ** (1 / 30))
    assert clopper_pearson_upper(0, 30) == pytest.approx(0.0950, abs=1e-4)
    assert clopper_pearson_upper(0, 120) == pytest.approx(0.0247, abs=1e-4)
    assert clopper_pearson_upper(3, 150) == pytest.approx(0.0509, abs=2e-4)
    assert clopper_pearson_upper(5, 5) == 1.0
    assert math.isnan(clopper_pearson_upper(0, 0))


def test_power_curve_bins_decisions_by_the_best_true_gain():
    runs = [_run("a", [_cand("x", t, t, t, t)], promoted="x" if promoted else None, bar=100.0)
            for t, promoted in ((99.0, False), (101.0, False), (104.0, True), (104.5, False),
                                (120.0, True))]
    curve = {(b["gain_from"], b["gain_to"]): b for b in power_curve(runs)}
    assert curve[(-math.inf, 0.0)]["decisions"] == 1 and curve[(-math.inf, 0.0)]["rate"] == 0
    assert curve[(0.0, 0.02)]["promotions"] == 0
    assert curve[(0.03, 0.05)]["decisions"] == 2 and curve[(0.03, 0.05)]["rate"] == 0.5
    high = curve[(0.10, math.inf)]
    assert high["rate"] == 1.0 and high["low"] == pytest.approx(0.025) and high["high"] == 1.0


class _Const:
    def __init__(self, action):
        self.action = action

    def predict(self, obs):
        return np.full(np.asarray(obs).shape[0], self.action, dtype=np.int64)


def test_blend_policy_takes_the_first_policy_in_its_share_of_states():
    obs = np.random.default_rng(0).normal(size=(4000, 3))
    blend = BlendPolicy(_Const(1), _Const(0), 0.3, seed=5)
    actions = blend.predict(obs)
    assert actions.mean() == pytest.approx(0.3, abs=0.03)
    assert (blend.predict(obs) == actions).all()  # deterministic per state


def test_near_bar_blend_bisects_to_the_target_value():
    obs = np.random.default_rng(1).normal(size=(4000, 3))

    def value(policy):  # the first policy is worth 20, the second 10: linear in the share
        return 10.0 + 10.0 * policy.predict(obs).mean()

    policy, v = near_bar_blend(value, _Const(1), _Const(0), target=14.2, band=0.2, seed=3)
    assert v == pytest.approx(14.2, abs=0.2) and value(policy) == v
    # a target no blend reaches within the band is reported as not found
    assert near_bar_blend(value, _Const(1), _Const(0), target=14.2, band=1e-9, seed=3,
                          steps=2) is None


def test_validation_defaults_are_the_nightly_jobs_settings():
    from offline_rl.algos.training import TrainingConfig
    from offline_rl.ope.evaluate import OPEConfig

    cfg = ValidationConfig()
    assert cfg.train_steps == NIGHTLY_TRAIN_STEPS == TrainingConfig().n_steps
    assert cfg.train_batch_size == NIGHTLY_TRAIN_BATCH_SIZE == TrainingConfig().batch_size
    nightly = OPEConfig()
    assert cfg.ope.fqe_steps == VALIDATION_FQE_STEPS == nightly.fqe_steps
    for name in ("n_bootstrap", "alpha", "fqe_refits", "estimators", "fqe_hidden_units"):
        assert getattr(cfg.ope, name) == getattr(nightly, name), name
    assert cfg.gate == GateConfig()
    assert "little_to_gain" in DEFAULT_SCENARIOS and "promoted_incumbent" in DEFAULT_SCENARIOS


def test_promoted_incumbent_run_is_judged_against_the_earlier_policy(tmp_path):
    from offline_rl.domains import get_domain
    from offline_rl.experiments.validation.run import run_one
    from offline_rl.ope.evaluate import OPEConfig

    cfg = ValidationConfig(domains=("cart",), scenarios=("promoted_incumbent",), seeds=1,
                           candidates=("double_dqn",), train_steps=30, truth_episodes=300,
                           episode_scale=0.02, constructed=("worse", "near_bar"),
                           ope=OPEConfig(fqe_steps=40, n_bootstrap=20, device="cpu"))
    run = run_one(get_domain("cart"), VALIDATION_SCENARIOS["promoted_incumbent"], 0, cfg,
                  tmp_path)
    inc = run["incumbent"]
    assert inc["name"] == "earlier:double_dqn" and inc["estimates"]["dr"]["value"] is not None
    assert run["bar"] == pytest.approx(inc["true_value"] + 0.02 * abs(inc["true_value"]))
    assert inc["true_value"] != run["behavior"]["true_value"]
    names = [c["name"] for c in run["candidates"]]
    assert names[:2] == ["double_dqn", "worse"]
    one_percent = 0.01 * abs(inc["true_value"])
    for c in run["candidates"]:  # kept only between the bar and 1% beyond it, on their side
        if c["name"] == "near_bar_above":
            assert run["bar"] <= c["true_value"] <= run["bar"] + one_percent + 1e-9
        if c["name"] == "near_bar_below":
            assert run["bar"] - one_percent - 1e-9 <= c["true_value"] <= run["bar"]
    assert any(n.startswith("near_bar") for n in names) or any(
        "near_bar" in note for note in run["notes"])
    # replaying the stored run rebuilds the off-policy incumbent and the same decision
    result = {"runs": [run], "config": {"gate": {}, "indifference": cfg.indifference,
                                        "ope": {"estimators": list(cfg.ope.estimators)}}}
    again = replay_gate(result, GateConfig())
    assert again["runs"][0]["decision"] == run["decision"]


def test_results_of_one_configuration_merge_and_others_do_not():
    from offline_rl.experiments.validation.results import merge_results

    def result(domain, runs, margin=0.02, scenarios=("default", "small_data")):
        return {"config": {"domains": [domain], "scenarios": list(scenarios), "seeds": 1,
                           "first_seed": 0, "gate": {"margin": margin}},
                "runs": runs, "seconds": 2.0}

    merged = merge_results([result("a", RUNS[:2]), result("b", RUNS[2:])])
    assert merged["config"]["domains"] == ["a", "b"] and merged["runs"] == RUNS
    assert merged["seconds"] == 4.0
    # a run of some scenarios only (e.g. to finish a seed) is the same configuration
    split = merge_results([result("a", RUNS[:2], scenarios=("default",)),
                           result("a", RUNS[2:], scenarios=("small_data",))])
    assert split["config"]["scenarios"] == ["default", "small_data"]
    with pytest.raises(ValueError, match="different settings"):
        merge_results([result("a", RUNS[:2]), result("b", RUNS[2:], margin=0.05)])


def test_gain_lower_coverage_counts_bounds_at_or_below_the_true_gain():
    from offline_rl.experiments.validation.figures import gain_lower_coverage
    from offline_rl.ope.evaluate import student_t_quantile

    def run(true_value, gain_se):
        cand = {"name": "a", "true_value": true_value,
                "estimates": {"dr": {"value": 6.0}},
                "refit_replicates": {"alpha": 0.1, "values": {"dr": [6.5, 5.5, 6.0, 6.0]}},
                "episode_gains": {"behavior": {"dr": {"gain": 1.0, "se": gain_se, "n": 1000}}}}
        return {"headline": "dr", "incumbent": {"name": "behavior", "true_value": 5.0},
                "behavior": {"value": 5.0, "true_value": 5.0,
                             "refit_replicates": [5.0, 5.0, 5.0, 5.0]},
                "candidates": [cand]}

    # refits: gain 1.0, sd of (0.5, -0.5, 0, 0) over 4 -> lower 1 - t(0.95, 3) * 0.408 = 0.04
    lower = 1.0 - student_t_quantile(0.95, 3) * np.std([0.5, -0.5, 0, 0], ddof=1)
    runs = [run(5.0 + lower + 0.01, 0.1), run(5.0 + lower - 0.01, 0.1)]
    refits = gain_lower_coverage(runs)
    assert (refits["pairs"], refits["covered"], refits["nominal"]) == (2, 1, 0.95)
    # episodes: lower 1 - 1.646 * 0.1 = 0.835, above both true gains (0.05 and 0.03)
    assert gain_lower_coverage(runs, "episodes")["covered"] == 0
    assert gain_lower_coverage([{**runs[0], "candidates": [
        {k: v for k, v in runs[0]["candidates"][0].items() if k != "episode_gains"}]}],
        "episodes")["pairs"] == 0  # runs recorded before episode gains: not counted


def test_early_late_policy_switches_at_the_cut_of_the_progress_feature():
    obs = np.zeros((5, 3), dtype=np.float32)
    obs[:, 1] = [0.0, 0.25, 0.5, 0.75, 1.0]
    policy = EarlyLatePolicy(_Const(1), _Const(0), cut=0.5, progress_index=1, step=0.0, seed=0)
    assert policy.predict(obs).tolist() == [1, 1, 0, 0, 0]
    assert EarlyLatePolicy(_Const(1), _Const(0), 0.0, 1, 0.0, 0).predict(obs).tolist() == [0] * 5
    # with the feature's step, the states of the step the cut falls in are split by their
    # hash: the share taking the early action grows smoothly with the cut
    rng = np.random.default_rng(2)
    many = rng.normal(size=(20_000, 3)).astype(np.float32)
    many[:, 1] = rng.integers(0, 4, 20_000) / 4  # four steps of 0.25
    assert progress_step(many[:, 1]) == 0.25 and progress_step(np.zeros(3)) == 0.0
    shares = [EarlyLatePolicy(_Const(1), _Const(0), cut, 1, 0.25, 7).predict(many).mean()
              for cut in (0.3, 0.35, 0.4)]
    assert shares[0] < shares[1] < shares[2]
    assert shares[1] == pytest.approx(0.25 + 0.25 * 0.4, abs=0.02)  # step 1 early, 40% of step 2
    at = EarlyLatePolicy(_Const(1), _Const(0), 0.35, 1, 0.25, 7)
    assert (at.predict(many) == at.predict(many)).all()  # deterministic per state


def test_value_greedy_policy_takes_the_best_allowed_action():
    def q(obs):
        return np.tile([3.0, 1.0, 2.0], (np.asarray(obs).shape[0], 1))

    obs = np.array([[1, 1, 1], [0, 1, 1], [0, 1, 0], [0, 0, 0]], dtype=np.float32)
    assert ValueGreedyPolicy(q, None).predict(obs).tolist() == [0, 0, 0, 0]
    # the mask features are the observation's columns 0-2; a state allowing none takes the
    # best of all
    assert ValueGreedyPolicy(q, [0, 1, 2]).predict(obs).tolist() == [0, 2, 1, 0]


def test_constructed_figures_count_false_passes_of_candidates_truly_below_the_bar():
    def cand(name, true, value, passed):
        return {**_cand(name, true, value, value - 1, value + 1), "kind": "constructed",
                "passed_gate": passed, "promoted_when_added": passed}

    runs = [_run("a", [_cand("x", 12.0, 12.0, 11.0, 13.0), cand("early_late", 9.0, 11.0, True)]),
            _run("a", [cand("early_late", 9.5, 9.5, False), cand("fqe_greedy", 11.0, 12.1, True)]),
            _run("a", [cand("fqe_greedy", 10.0, 12.0, False)])]
    figures = constructed_figures(runs)
    assert list(figures) == ["early_late", "fqe_greedy"]
    late = figures["early_late"]
    assert (late["runs"], late["truly_below_bar"], late["false_passes"],
            late["promoted_below_bar"]) == (2, 2, 1, 1)
    assert late["false_pass_upper"] == pytest.approx(clopper_pearson_upper(1, 2))
    assert late["mean_signed_relative_error"] == pytest.approx((2 / 9 + 0.0) / 2)
    greedy = figures["fqe_greedy"]  # truly above the bar once: only the other run counts
    assert (greedy["runs"], greedy["truly_below_bar"], greedy["false_passes"],
            greedy["promoted_below_bar"]) == (2, 1, 0, 0)
    assert greedy["mean_signed_relative_error"] == pytest.approx((0.1 + 0.2) / 2)
    assert "x" not in figures  # trained candidates are not constructed ones
    # the decisions' power and regret are the trained candidates' alone: x (12 against the
    # behaviour's 10, kept) in the first run; nothing to gain in the others
    assert gate_figures(runs)["decision_regret"] == pytest.approx(0.2 / 3)
    assert [b["decisions"] for b in power_curve(runs) if b["decisions"]] == [1]


def test_a_run_is_decided_over_the_trained_candidates_and_each_constructed_one_added():
    """The nightly job's Holm family is its trained candidates: constructed ones widen it
    only in the night that adds each of them."""
    from offline_rl.experiments.validation.results import decide_night
    from offline_rl.ope.diagnostics import Diagnostics
    from offline_rl.ope.estimators import Estimate
    from offline_rl.ope.evaluate import PolicyEvaluation
    from offline_rl.ope.gate import Incumbent, decide

    healthy = Diagnostics(ess=500.0, ess_fraction=0.05, per_decision_ess_fraction=0.2,
                          max_weight_share=0.01, rare_action_rate=0.0, action_match_rate=0.3)
    base = 100.0 + np.array([0.3, -0.2, 0.1, 0.0, -0.4, 0.2, 0.1, -0.1])
    incumbent = Incumbent("behavior", 100.0, math.nan, math.nan, tuple(base))

    def paired(name, gain):  # replicate differences of mean `gain` and sd exactly 1
        diffs = gain + math.sqrt(7 / 8) * np.array([1, -1, 1, -1, 1, -1, 1, -1.0])
        extra = {"refit_replicates": {"alpha": 0.1, "values": {"dr": (base + diffs).tolist()}}}
        return PolicyEvaluation(name, {"dr": Estimate("dr", 100.0 + gain, math.nan, math.nan,
                                                      math.nan)}, healthy, 0.0, extra)

    # "a" clears the 2% margin at Holm's first level over two candidates (lower end
    # 5 - t(0.975, 7) = 2.64) but not over seven (5 - t(0.9929, 7) = 1.7)
    evaluations = [paired("a", 5.0), paired("b", -3.0), paired("c", 20.0),
                   *(paired(n, -5.0) for n in ("d", "e", "f", "g"))]
    kinds = {"a": "trained", "b": "trained", **{n: "constructed" for n in "cdefg"}}
    truths = {"a": 110.0, "b": 97.0, "c": 101.0, "d": 95.0, "e": 95.0, "f": 95.0, "g": 95.0}
    record, fields = decide_night(evaluations, kinds, incumbent, GateConfig(), truths,
                                  bar=102.0, zone=1.0)
    assert record["candidate"] == "a" and not record["false_promotion"]
    assert record["improvement_beyond_zone"]  # a's truth, not c's
    assert fields["a"] == {"passed_gate": True} and fields["b"] == {"passed_gate": False}
    # c, added to a and b, passes and is promoted (the highest estimate): falsely (101 < 102)
    assert fields["c"] == {"passed_gate": True, "promoted_when_added": True}
    assert fields["d"] == {"passed_gate": False, "promoted_when_added": False}
    # one family of all seven would have kept "a" out
    assert not next(v for v in decide(evaluations, incumbent, GateConfig()).verdicts
                    if v.name == "a").passed


def test_early_late_is_bisected_to_just_below_the_bar():
    from offline_rl.domains import get_domain
    from offline_rl.experiments.validation.run import _add_early_late

    cart = get_domain("cart")
    index = cart.feature_names.index(cart.progress_feature)
    obs = np.zeros((1000, len(cart.feature_names)), dtype=np.float32)
    obs[:, index] = np.linspace(0.0, 1.0, 1000, endpoint=False)

    class Truth:
        def __init__(self, mean):
            self.mean = mean

    def truth_of(policy):  # action 1 is worth 20 a decision, action 0 10
        return Truth(10.0 + 10.0 * policy.predict(obs).mean())

    policies, kinds, notes = {"best": _Const(1)}, {"best": "trained"}, []
    truths = {"best": Truth(20.0)}
    _add_early_late(cart, policies, kinds, truths, notes, _Const(0), truth_of, target=14.0,
                    band=0.1, say=lambda _m: None, logged=obs, seed=3)
    assert notes == [] and kinds["early_late"] == "constructed"
    assert truths["early_late"].mean == pytest.approx(14.0, abs=0.1)
    assert policies["early_late"].cut == pytest.approx(0.4, abs=0.01)
    assert policies["early_late"].step == pytest.approx(0.001, rel=1e-4)  # float32 gaps
    # nothing truly above the aim: left out, with the reason
    _add_early_late(cart, {}, {}, {"best": Truth(13.0)}, notes, _Const(0), truth_of, 14.0, 0.1,
                    lambda _m: None, obs, 3)
    assert notes == ["early_late left out: no candidate truly above 14"]


def test_spibb_keeps_the_logging_probability_of_rare_actions_and_moves_the_rest_to_the_best():
    behavior = np.array([[0.50, 0.30, 0.17, 0.03],   # action 3 rare
                         [0.02, 0.01, 0.94, 0.03],   # only action 2 well logged
                         [0.02, 0.02, 0.02, 0.94],   # well logged action 3 is masked out
                         [0.25, 0.25, 0.25, 0.25]])
    values = np.array([[1.0, 2.0, 0.0, 9.0],         # the rare action's value is ignored
                       [5.0, 5.0, 1.0, 5.0],
                       [0.0, 3.0, 1.0, 9.0],
                       [0.0, 0.0, 1.0, 0.0]])
    obs = np.zeros((4, 5), dtype=np.float32)
    obs[:, 1:5] = 1.0  # mask features 1-4: every action allowed ...
    obs[2, 4] = 0.0    # ... but action 3 in state 2
    policy = SpibbPolicy(lambda o: values[: len(o)], lambda o: np.log(behavior[: len(o)]),
                         0.05, mask_indices=[1, 2, 3, 4])
    probs = policy.probs(obs)
    np.testing.assert_allclose(probs[0], [0.0, 0.97, 0.0, 0.03])
    np.testing.assert_allclose(probs[1], [0.02, 0.01, 0.94, 0.03])  # best logged action: 2
    # state 2 renormalises the model over the allowed actions (1/3 each): none is rare
    np.testing.assert_allclose(probs[2], [0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(probs[3], [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(policy.fallback(obs), [0.03, 0.06, 0.0, 0.0])
    assert policy.predict(obs).tolist() == [1, 2, 1, 2]
    # with more actions than 1 / threshold, a state may hold only rare ones: kept whole
    flat = SpibbPolicy(lambda o: np.arange(25.0)[None].repeat(len(o), 0),
                       lambda o: np.zeros((len(o), 25)), 0.05, None)
    np.testing.assert_allclose(flat.probs(obs[:1]), np.full((1, 25), 0.04))
    assert flat.fallback(obs[:1]).tolist() == [1.0]
    with pytest.raises(ValueError, match="threshold"):
        SpibbPolicy(lambda o: o, lambda o: o, 1.0, None)


def test_mixture_draws_from_the_behaviour_model_with_its_share_and_is_greedy_otherwise():
    behavior = np.array([[0.50, 0.30, 0.17, 0.03],
                         [0.02, 0.01, 0.94, 0.03],
                         [0.02, 0.02, 0.02, 0.94],   # action 3 is masked out below
                         [0.25, 0.25, 0.25, 0.25]])
    values = np.array([[1.0, 2.0, 0.0, 9.0],
                       [5.0, 5.0, 1.0, 5.0],         # ties: the first best action
                       [0.0, 3.0, 1.0, 9.0],         # the best action is masked out
                       [0.0, 0.0, 1.0, 0.0]])
    obs = np.zeros((4, 5), dtype=np.float32)
    obs[:, 1:5] = 1.0
    obs[2, 4] = 0.0
    policy = MixturePolicy(lambda o: values[: len(o)], lambda o: np.log(behavior[: len(o)]),
                           0.5, mask_indices=[1, 2, 3, 4])
    probs = policy.probs(obs)
    np.testing.assert_allclose(probs[0], [0.25, 0.15, 0.085, 0.515])
    np.testing.assert_allclose(probs[1], [0.51, 0.005, 0.47, 0.015])
    np.testing.assert_allclose(probs[2], [1 / 6, 1 / 6 + 0.5, 1 / 6, 0.0])
    np.testing.assert_allclose(probs[3], [0.125, 0.125, 0.625, 0.125])
    assert policy.predict(obs).tolist() == [3, 0, 1, 2]
    with pytest.raises(ValueError, match="share"):
        MixturePolicy(lambda o: o, lambda o: o, 1.0, None)
