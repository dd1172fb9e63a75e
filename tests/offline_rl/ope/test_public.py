"""Tests of the public OPE entry point: hand-computed bandit values, simulator truth, exported
policies, estimated propensities, validation messages, JSON layout, CSV and Parquet."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
import torch

from offline_rl.export.registry import publish
from offline_rl.ope.public import OPEInputError, evaluate_logs
from offline_rl.simulator.base import true_value
from offline_rl.simulator.recommendation import RecommendationSimulator, simulate_sessions
from offline_rl.simulator.world import make_world

# --------------------------------------------------------------------------------------------
# A hand-checkable contextual bandit (one-step episodes)
# --------------------------------------------------------------------------------------------

# episode  action  reward  b      pi(0)=0.25, pi(1)=0.75  ->  w = pi(a) / b
#   e1       0       1     0.5    w = 0.5
#   e2       1       0     0.5    w = 1.5
#   e3       0       2     0.8    w = 0.3125
#   e4       1       3     0.2    w = 3.75
# sum w r = 0.5 + 0 + 0.625 + 11.25 = 12.375; sum w = 6.0625
IPW = 12.375 / 4
SNIPW = 12.375 / 6.0625


def bandit_logs() -> pl.DataFrame:
    return pl.DataFrame({
        "episode_id": ["e1", "e2", "e3", "e4"],
        "step": [0, 0, 0, 0],
        "action": [0, 1, 0, 1],
        "reward": [1.0, 0.0, 2.0, 3.0],
        "behavior_prob": [0.5, 0.5, 0.8, 0.2],
    })


def bandit_target() -> pl.DataFrame:
    ids = ["e1", "e2", "e3", "e4"]
    return pl.DataFrame({
        "episode_id": [e for e in ids for _ in range(2)],
        "step": [0] * 8,
        "action": [0, 1] * 4,
        "prob": [0.25, 0.75] * 4,
    })


EXPECTED_TOP = {"behavior_value", "estimates", "diagnostics"}
EXPECTED_DIAGNOSTICS = {"ess", "ess_fraction", "per_decision_ess_fraction", "max_weight_share",
                        "rare_action_rate", "action_match_rate", "estimator_disagreement"}


def test_bandit_ipw_and_snipw_match_hand_computation():
    result = evaluate_logs(bandit_logs(), bandit_target(), n_bootstrap=200)
    record = result.as_json()
    est = record["estimates"]
    assert est["ipw"]["value"] == pytest.approx(IPW)
    assert est["snipw"]["value"] == pytest.approx(SNIPW)
    assert est["pdis"]["value"] == pytest.approx(IPW)  # one step: pdis == ipw
    assert est["snpdis"]["value"] == pytest.approx(SNIPW)
    assert record["behavior_value"] == pytest.approx(1.5)
    assert record["relative_to_behavior"]["ipw"]["difference"] == pytest.approx(IPW - 1.5)
    assert record["relative_to_behavior"]["ipw"]["lift"] == pytest.approx((IPW - 1.5) / 1.5)
    # no features: model-based estimators are omitted, and a warning says why
    assert set(est) == {"ipw", "snipw", "pdis", "snpdis"}
    assert any("dm, dr, sndr omitted" in w and "f_" in w for w in record["warnings"])
    assert record["behavior_prob_source"] == "logged"
    assert record["n_episodes"] == 4 and record["n_decisions"] == 4


def test_json_layout_is_exactly_as_specified():
    record = evaluate_logs(bandit_logs(), bandit_target(), n_bootstrap=100).as_json()
    assert EXPECTED_TOP <= set(record)
    assert isinstance(record["behavior_value"], float)
    for entry in record["estimates"].values():
        assert set(entry) == {"value", "low", "high"}
        assert all(isinstance(v, float) for v in entry.values())
        assert entry["low"] <= entry["high"]
    assert set(record["diagnostics"]) == EXPECTED_DIAGNOSTICS
    assert set(record["behavior_interval"]) == {"low", "high"}
    assert isinstance(record["warnings"], list)
    json.loads(json.dumps(record, allow_nan=False))  # strict JSON: no NaN / inf


def test_no_bootstrap_gives_null_intervals_not_nan():
    record = evaluate_logs(bandit_logs(), bandit_target(), n_bootstrap=0).as_json()
    assert record["estimates"]["ipw"]["low"] is None
    assert record["estimates"]["ipw"]["value"] == pytest.approx(IPW)
    json.dumps(record, allow_nan=False)


def test_csv_and_parquet_give_identical_results_and_row_order_does_not_matter(tmp_path):
    logs, target = bandit_logs(), bandit_target()
    logs.write_csv(tmp_path / "logs.csv")
    target.write_csv(tmp_path / "target.csv")
    logs.reverse().write_parquet(tmp_path / "logs.parquet")
    target.reverse().write_parquet(tmp_path / "target.parquet")
    from_csv = evaluate_logs(tmp_path / "logs.csv", tmp_path / "target.csv", n_bootstrap=50)
    from_parquet = evaluate_logs(str(tmp_path / "logs.parquet"), str(tmp_path / "target.parquet"),
                                 n_bootstrap=50)
    csv_record, parquet_record = from_csv.as_json(), from_parquet.as_json()
    assert csv_record.pop("details")["target"].endswith("target.csv")
    assert parquet_record.pop("details")["target"].endswith("target.parquet")
    assert csv_record == parquet_record
    assert from_csv.as_json()["estimates"]["ipw"]["value"] == pytest.approx(IPW)


# --------------------------------------------------------------------------------------------
# Multi-step: the recommendation simulator, against its ground truth
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recommendation():
    world = make_world()
    sim = RecommendationSimulator(world)
    users = np.random.default_rng(3).integers(0, world.users.n_users, 3000)
    log = simulate_sessions(sim, users, np.random.default_rng(13))
    columns = {"episode_id": log.session, "step": log.page, "action": log.action,
               "reward": log.reward, "behavior_prob": log.behavior_prob,
               "terminal": log.terminal}
    for j, name in enumerate(sim.feature_names):
        columns["f_" + name] = log.observation[:, j]
    return world, sim, log, pl.DataFrame(columns)


def _segment_favourite(world, sim, mix):
    """A fixed stochastic policy: ``mix`` on the segment's favourite category, rest uniform."""
    n_seg = world.config.n_segments
    favourite = world.segment_taste.argmax(axis=1)

    def probs(obs):
        p = np.full((obs.shape[0], sim.n_actions), (1.0 - mix) / sim.n_actions)
        p[np.arange(obs.shape[0]), favourite[obs[:, :n_seg].argmax(axis=1)]] += mix
        return p

    return probs


def _sampler(probs, seed):
    rng = np.random.default_rng(seed)

    def policy(obs):
        p = probs(obs)
        u = rng.random(obs.shape[0])[:, None]
        return (u > np.cumsum(p, axis=1)).sum(axis=1).clip(0, p.shape[1] - 1)

    return policy


def _table(log, probs):
    p = probs(log.observation)
    n_actions = p.shape[1]
    return pl.DataFrame({"episode_id": np.repeat(log.session, n_actions),
                         "step": np.repeat(log.page, n_actions),
                         "action": np.tile(np.arange(n_actions), log.action.shape[0]),
                         "prob": p.reshape(-1)})


def test_multi_step_estimates_land_near_the_simulator_truth(recommendation):
    world, sim, log, logs = recommendation
    uniform = lambda obs: np.full((obs.shape[0], sim.n_actions), 1.0 / sim.n_actions)  # noqa: E731
    truth = true_value(sim, _sampler(uniform, 1), episodes=50_000, seed=5).mean
    result = evaluate_logs(logs, _table(log, uniform), n_bootstrap=200, fqe_refits=4)
    est = result.estimates
    assert set(est) == {"ipw", "snipw", "pdis", "snpdis", "dm", "dr", "sndr"}
    for name in ("dr", "sndr", "dm", "pdis", "snpdis"):
        assert est[name].value == pytest.approx(truth, rel=0.15), name
    assert est["dr"].low < truth < est["dr"].high
    # the behaviour policy is clearly better than uniform, and the report says so
    assert result.behavior.value > truth
    assert result.as_json()["relative_to_behavior"]["dr"]["difference"] < 0
    assert result.behavior_prob_source == "logged"
    assert result.details["fqe"]["iterations"] == 10  # longest episode (8) + 2 backups
    # the model-based intervals come from the 4 refits: each estimator's replicates are kept
    assert {k: len(v) for k, v in result.details["refit_replicates"]["values"].items()} == \
        {"dm": 4, "dr": 4, "sndr": 4}

    # a state-dependent stochastic table policy, farther from the logging policy
    favourite = _segment_favourite(world, sim, 0.3)
    truth = true_value(sim, _sampler(favourite, 2), episodes=50_000, seed=5).mean
    result = evaluate_logs(logs, _table(log, favourite), n_bootstrap=0)
    assert result.estimates["dr"].value == pytest.approx(truth, rel=0.2)
    assert result.estimates["snpdis"].value == pytest.approx(truth, rel=0.2)


# --------------------------------------------------------------------------------------------
# Exported policies
# --------------------------------------------------------------------------------------------


class _FirstTwoArgmax(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :2].argmax(dim=1)


def _export(tmp_path, names=("x0", "x1")):
    policy_file = tmp_path / "policy_src.pt"
    torch.jit.script(_FirstTwoArgmax()).save(str(policy_file))
    return publish(tmp_path / "exports", "recommendation", policy_file,
                   {"algorithm": "Test", "feature_schema": {"names": list(names)}}).path


def featured_bandit(n: int = 400, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """Bandit logs with features; the logging policy is logistic in x1 - x0 (known propensities).

    Reward is about 1 when the action is 1 exactly when x1 > x0, else about 0.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    p1 = 1.0 / (1.0 + np.exp(-1.5 * (x[:, 1] - x[:, 0])))
    action = (rng.random(n) < p1).astype(np.int64)
    reward = np.where(action == (x[:, 1] > x[:, 0]), 1.0, 0.0) + 0.1 * x[:, 2]
    logs = pl.DataFrame({"episode_id": np.arange(n), "step": np.zeros(n, dtype=np.int64),
                         "action": action, "reward": reward,
                         "behavior_prob": np.where(action == 1, p1, 1 - p1),
                         "f_x1": x[:, 1], "f_x0": x[:, 0], "f_noise": x[:, 2]})
    return logs, (x[:, 1] > x[:, 0]).astype(np.int64)


def test_exported_policy_equals_its_one_hot_table(tmp_path):
    logs, greedy = featured_bandit()
    export = _export(tmp_path)
    n = logs.height
    table = pl.DataFrame({"episode_id": np.arange(n), "step": np.zeros(n, dtype=np.int64),
                          "action": greedy, "prob": np.ones(n)})  # absent rows: probability 0
    from_export = evaluate_logs(logs, export, n_bootstrap=100, fqe_steps=300)
    from_table = evaluate_logs(logs, table, n_bootstrap=100, fqe_steps=300)
    assert from_export.target_kind == "export" and from_table.target_kind == "table"
    assert from_export.as_json()["estimates"] == from_table.as_json()["estimates"]
    # hand computation of IPW for the deterministic policy
    b = logs["behavior_prob"].to_numpy()
    match = logs["action"].to_numpy() == greedy
    ipw = float(np.mean(match / b * logs["reward"].to_numpy()))
    assert from_export.estimates["ipw"].value == pytest.approx(ipw)
    assert from_export.diagnostics.action_match_rate == pytest.approx(match.mean())
    # the greedy policy earns about 1 per decision, the logging policy clearly less
    assert from_export.estimates["dr"].value == pytest.approx(1.0, abs=0.1)
    assert from_export.behavior.value < 0.85


def test_exported_policy_needs_its_feature_columns(tmp_path):
    logs, _ = featured_bandit(50)
    export = _export(tmp_path, names=("x0", "x1", "age", "basket"))
    with pytest.raises(OPEInputError, match=r"missing feature column\(s\) f_age, f_basket"):
        evaluate_logs(logs, export)


def test_results_are_deterministic_for_a_seed(tmp_path):
    logs, _ = featured_bandit(200)
    export = _export(tmp_path)
    first = evaluate_logs(logs, export, n_bootstrap=50, fqe_steps=200, seed=4).as_json()
    second = evaluate_logs(logs, export, n_bootstrap=50, fqe_steps=200, seed=4).as_json()
    assert first == second


# --------------------------------------------------------------------------------------------
# Missing propensities
# --------------------------------------------------------------------------------------------


def test_missing_propensity_column_is_estimated_from_features_with_a_warning(tmp_path):
    logs, greedy = featured_bandit(2000, seed=1)
    export = _export(tmp_path)
    logged = evaluate_logs(logs, export, n_bootstrap=0, fqe_steps=200)
    estimated = evaluate_logs(logs.drop("behavior_prob"), export, n_bootstrap=0, fqe_steps=200)
    record = estimated.as_json()
    assert record["behavior_prob_source"] == "estimated"
    assert any("ESTIMATED" in w and "logistic regression" in w for w in record["warnings"])
    assert estimated.details["behavior_model"]["method"] == "logistic_regression"
    assert logged.behavior_prob_source == "logged"
    # the logistic model recovers the logging policy well enough for IPW
    assert estimated.estimates["ipw"].value == pytest.approx(logged.estimates["ipw"].value,
                                                             rel=0.1)


def test_some_null_propensities_without_features_use_step_frequencies():
    logs = bandit_logs().with_columns(
        pl.when(pl.col("episode_id") == "e2").then(None).otherwise(pl.col("behavior_prob"))
        .alias("behavior_prob"))
    record = evaluate_logs(logs, bandit_target(), n_bootstrap=0).as_json()
    assert record["behavior_prob_source"] == "estimated"
    assert any("missing in 1 of 4 rows" in w and "per step" in w for w in record["warnings"])
    # empirical frequencies: b(0) = b(1) = 1/2, so w = 0.5 for action 0 and 1.5 for action 1
    assert record["estimates"]["ipw"]["value"] == pytest.approx((0.5 * 1 + 0.5 * 2 + 1.5 * 3) / 4)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _with(frame: pl.DataFrame, column: str, row: int, value) -> pl.DataFrame:
    values = frame[column].to_list()
    values[row] = value
    if isinstance(value, str):
        values = [str(v) for v in values]
    elif isinstance(value, float):
        values = [float(v) for v in values]
    return frame.with_columns(pl.Series(column, values))


MALFORMED = {
    "missing column": (lambda logs, target: (logs.drop("reward"), target),
                       r"logs\.csv: missing column\(s\) reward"),
    "behaviour prob above 1": (lambda logs, target: (_with(logs, "behavior_prob", 2, 1.5), target),
                               r"logs\.csv: column 'behavior_prob', row 2 .*1\.5 outside \(0, 1\]"),
    "behaviour prob zero": (lambda logs, target: (_with(logs, "behavior_prob", 1, 0.0), target),
                            r"column 'behavior_prob', row 1 .*positive probability"),
    "target prob negative": (lambda logs, target: (logs, _with(target, "prob", 3, -0.25)),
                             r"target\.csv: column 'prob', row 3 .*-0\.25 outside \[0, 1\]"),
    "target not summing to 1": (lambda logs, target: (logs, _with(target, "prob", 5, 0.5)),
                                r"target\.csv: column 'prob', row 4 .*sum to 0\.75, not 1"),
    "target rows absent": (lambda logs, target: (logs, target.filter(pl.col("episode_id") != "e3")),
                           r"no rows for the logged decision at .*logs\.csv row 2 "
                           r"\(episode_id='e3', step=0\)"),
    "unknown target action": (lambda logs, target: (logs, _with(target, "action", 1, 7)),
                              r"column 'action', row 1 .*action 7 never appears"),
    "non-integer action": (lambda logs, target: (_with(logs, "action", 3, 1.5), target),
                           r"logs\.csv: column 'action', row 3 .*non-integer value 1\.5"),
    "negative action": (lambda logs, target: (_with(logs, "action", 0, -1), target),
                        r"column 'action', row 0 .*negative value -1"),
    "duplicate decision": (lambda logs, target: (_with(logs, "episode_id", 3, "e1"), target),
                           r"column 'step', row 3 .*duplicate \(episode_id, step\): same as row 0"),
    "step gap": (lambda logs, target: (_with(logs, "step", 2, 1), target),
                 r"column 'step', row 2 .*step 1 where step 0 was expected"),
    "nan reward": (lambda logs, target: (_with(logs, "reward", 1, float("nan")), target),
                   r"column 'reward', row 1 .*non-finite value nan"),
    "inf reward": (lambda logs, target: (_with(logs, "reward", 2, float("inf")), target),
                   r"column 'reward', row 2 .*non-finite value inf"),
    "text reward": (lambda logs, target: (_with(logs, "reward", 1, "lots"), target),
                    r"column 'reward', row 1 .*'lots' is not a number"),
    "target decision not logged": (lambda logs, target: (logs, _with(target, "episode_id", 6,
                                                                     "e9")),
                                   r"target\.csv: column 'episode_id', row 6 .*no logged decision"),
    "duplicate target row": (lambda logs, target: (logs, _with(target, "action", 1, 0)),
                             r"column 'action', row 1 .*duplicate \(episode_id, step, action\)"),
}


def _write_case(tmp_path, case):
    logs, target = MALFORMED[case][0](bandit_logs(), bandit_target())
    logs.write_csv(tmp_path / "logs.csv")
    target.write_csv(tmp_path / "target.csv")
    return tmp_path / "logs.csv", tmp_path / "target.csv"


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_names_file_column_and_row(tmp_path, case):
    logs, target = _write_case(tmp_path, case)
    with pytest.raises(OPEInputError, match=MALFORMED[case][1]) as info:
        evaluate_logs(logs, target, n_bootstrap=0)
    assert isinstance(info.value, ValueError) and info.value.hint


def test_terminal_flag_before_the_last_step_is_rejected():
    logs = pl.DataFrame({"episode_id": [1, 1, 2], "step": [0, 1, 0], "action": [0, 1, 0],
                         "reward": [1.0, 0.0, 1.0], "behavior_prob": [0.5] * 3,
                         "terminal": [True, True, True]})
    target = pl.DataFrame({"episode_id": [1, 1, 2], "step": [0, 1, 0], "action": [0, 0, 1],
                           "prob": [1.0, 1.0, 1.0]})
    with pytest.raises(OPEInputError, match=r"column 'terminal', row 0 .*later steps"):
        evaluate_logs(logs, target)
    ok = evaluate_logs(logs.with_columns(pl.Series("terminal", [0, 1, 1])), target,
                       n_bootstrap=0, gamma=0.5)
    # episode 1: w_0 = 2 (pi(0)=1, b=0.5), w_1 = 0; episode 2: w_0 = 0
    assert ok.estimates["pdis"].value == pytest.approx((2 * 1.0 + 0.0) / 2)
    assert math.isclose(ok.behavior.value, (1.0 + 0.0 + 1.0) / 2)


def test_missing_files_and_unknown_formats_are_input_errors(tmp_path):
    with pytest.raises(OPEInputError, match="does not exist"):
        evaluate_logs(tmp_path / "nope.parquet", bandit_target())
    (tmp_path / "logs.json").write_text("{}")
    with pytest.raises(OPEInputError, match="unsupported file type '.json'"):
        evaluate_logs(tmp_path / "logs.json", bandit_target())
    (tmp_path / "dir").mkdir()
    with pytest.raises(OPEInputError, match="directory without manifest.json"):
        evaluate_logs(bandit_logs(), tmp_path / "dir")


# --------------------------------------------------------------------------------------------
# Settings and the action set
# --------------------------------------------------------------------------------------------


def test_settings_default_to_the_nightly_evaluations_and_can_be_replaced():
    from offline_rl.ope.evaluate import OPEConfig

    result = evaluate_logs(bandit_logs(), bandit_target())
    assert result.details["config"]["alpha"] == OPEConfig.alpha
    assert result.n_bootstrap == OPEConfig.n_bootstrap
    assert result.details["config"]["model_max_weight"] == OPEConfig.model_max_weight
    wider = evaluate_logs(bandit_logs(), bandit_target(), OPEConfig(alpha=0.5), n_bootstrap=80)
    assert (wider.alpha, wider.n_bootstrap) == (0.5, 80)
    ipw, narrow = result.estimates["ipw"], wider.estimates["ipw"]
    assert narrow.high - narrow.low < ipw.high - ipw.low
    with pytest.raises(ValueError, match="unknown setting"):
        evaluate_logs(bandit_logs(), bandit_target(), n_boot=10)
    with pytest.raises(ValueError, match="torch backend"):
        evaluate_logs(bandit_logs(), bandit_target(), fqe_backend="d3rlpy")
    with pytest.raises(ValueError, match="fqe_refits"):
        evaluate_logs(bandit_logs(), bandit_target(), fqe_refits=-1)


def test_an_action_count_lets_the_target_choose_actions_the_logs_lack():
    target = bandit_target()
    # e1's target puts 0.5 on action 2, which no logged decision took
    three = pl.concat([target.with_columns(
        pl.when((pl.col("episode_id") == "e1") & (pl.col("action") == 1)).then(0.25)
        .otherwise(pl.col("prob")).alias("prob")),
        pl.DataFrame({"episode_id": ["e1"], "step": [0], "action": [2], "prob": [0.5]})])
    with pytest.raises(OPEInputError, match=r"action 2 never appears in the logs' actions"):
        evaluate_logs(bandit_logs(), three, n_bootstrap=0)
    result = evaluate_logs(bandit_logs(), three, n_actions=3, n_bootstrap=0)
    assert result.estimates["ipw"].value == pytest.approx(IPW)  # e1's logged action: still 0.25
    assert result.details["target_greedy_action_share"] == [0.0, 0.75, 0.25]
    with pytest.raises(OPEInputError, match=r"action 4 is not one of the 3 actions"):
        evaluate_logs(bandit_logs(), three.with_columns(
            pl.when(pl.col("action") == 2).then(4).otherwise(pl.col("action"))
            .alias("action")), n_actions=3, n_bootstrap=0)
    with pytest.raises(OPEInputError, match=r"column 'action', row 1 .*action 1 is not one of "
                                            r"the 1 actions 0\.\.0"):
        evaluate_logs(bandit_logs(), bandit_target(), n_actions=1, n_bootstrap=0)
