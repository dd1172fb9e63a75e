"""The whole asset graph on a tiny simulated data set, in a temporary data home."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets.evaluation import ope_asset
from assets.ingestion import raw_assets
from assets.promotion import export_asset, gate_asset
from assets.training import candidates_asset
from assets.transitions import transitions_asset
from offline_rl.data.warehouse import Warehouse
from offline_rl.domains import get_domain
from offline_rl.export.loader import load_policy
from offline_rl.paths import DataPaths
from offline_rl.shop import write_landing
from orchestration.resources import DataHome

RECOMMENDATION = get_domain("recommendation")
recommendation_transitions = transitions_asset(RECOMMENDATION)
recommendation_candidates = candidates_asset(RECOMMENDATION)
recommendation_ope = ope_asset(RECOMMENDATION)
recommendation_gate = gate_asset(RECOMMENDATION)
recommendation_export = export_asset(RECOMMENDATION)

DAYS = [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]
ALL = [*raw_assets, recommendation_transitions, recommendation_candidates, recommendation_ope,
       recommendation_gate, recommendation_export]
# two days of logs: evaluate the held-out sessions of both (settle_days 0) rather than only
# the first day's, whose sessions are all complete
TINY = {"ops": {
    "recommendation_candidates": {"config": {"n_steps": 1500, "seed": 0, "device": "cpu",
                                             "algorithms": ["bc", "double_dqn"], "settle_days": 0}},
    "recommendation_ope": {"config": {"fqe_steps": 800, "n_bootstrap": 100, "device": "cpu"}},
}}


@pytest.fixture(scope="module")
def run_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    write_landing(home, days=2, start=DAYS[0], seed=5, events_per_day=40_000)
    resources = {"data_home": DataHome(home=str(home))}
    instance = dg.DagsterInstance.ephemeral()
    for day in DAYS:
        assert dg.materialize(raw_assets, partition_key=str(day), resources=resources,
                              instance=instance).success
    assert dg.materialize([recommendation_transitions], partition_key=str(DAYS[0]),
                          resources=resources, instance=instance,
                          selection=[recommendation_transitions]).success
    result = dg.materialize(ALL, partition_key=str(DAYS[1]), resources=resources,
                            instance=instance, run_config=TINY)
    assert result.success
    return DataPaths(home), resources, instance, result


def test_every_stage_wrote_its_output(run_home):
    paths, _, _, result = run_home
    wh = Warehouse(paths.warehouse)
    raw = wh.read_partitions("raw_clickstream", DAYS[0], DAYS[1])
    assert raw.height > 10_000
    transitions = wh.read_partitions("recommendation_transitions", DAYS[0], DAYS[1])
    assert transitions["partition_date"].unique().sort().to_list() == DAYS
    estimates = wh.query("registry/select_estimates", domain="recommendation", day=DAYS[1])
    assert {"bc", "double_dqn", "behavior"} <= set(estimates["policy"])
    assert {"dm", "dr", "snpdis"} <= set(estimates["estimator"])
    assert (estimates["low"] <= estimates["high"]).all()
    # each candidate's gain over the behaviour policy paired per episode, stored with it:
    # its mean is the difference of the two estimates
    from offline_rl.pipeline import read_evaluations

    behavior, evaluations, _ = read_evaluations(paths, "recommendation", DAYS[1])
    for ev in evaluations:
        gain = ev.episode_gain("behavior", "dr")
        assert gain is not None and gain["n"] > 100 and gain["se"] > 0, ev.name
        assert gain["gain"] == pytest.approx(ev.estimates["dr"].value - behavior.value)
    decision = wh.query("registry/select_decision", domain="recommendation", day=DAYS[1])
    assert decision.height == 1
    assert json.loads(decision["reasons"][0])
    assert (paths.reports / "recommendation" / f"{DAYS[1]}.md").read_text().startswith("# Off")
    for name in ("bc", "double_dqn"):
        record = json.loads((paths.models / "recommendation" / str(DAYS[1]) / name /
                             "training.json").read_text())
        assert record["data_window"]["end"] == str(DAYS[1])
        assert record["training_config"]["seed"] == 0
    meta = result.asset_materializations_for_node("recommendation_candidates")[0].metadata
    assert "data_window" in meta and "training_config" in meta
    # plots are inline PNGs, so they render in the UI's metadata
    image = "](data:image/png;base64,"
    assert image in meta["learning_curves"].value
    for node, key in (("recommendation_transitions", "plots"),
                      ("recommendation_ope", "forest_plot"),
                      ("recommendation_ope", "action_distribution"),
                      ("recommendation_gate", "report")):
        assert image in result.asset_materializations_for_node(node)[0].metadata[key].value
    html = (paths.reports / "recommendation" / f"{DAYS[1]}.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "data:image/png" in html


def test_checks_ran_and_passed(run_home):
    _, _, _, result = run_home
    evaluations = result.get_asset_check_evaluations()
    names = {e.check_name for e in evaluations}
    assert {"keys_not_null", "event_ids_unique", "probabilities_valid", "reconciled",
            "episodes_well_formed", "promotion_evidence"} <= names
    assert all(e.passed for e in evaluations)


def test_promoted_policy_is_exported_and_loadable(run_home):
    paths, _, _, _ = run_home
    wh = Warehouse(paths.warehouse)
    decision = wh.query("registry/select_decision", domain="recommendation", day=DAYS[1]).row(
        0, named=True)
    latest = paths.exports / "recommendation" / "latest"
    # the simulated shop is built so a personalised policy is clearly better: DoubleDQN wins
    assert decision["promoted"], json.loads(decision["reasons"])
    assert decision["export_version"] == latest.read_text().strip()
    policy = load_policy(paths.exports / "recommendation" / decision["export_version"])
    assert policy.manifest["candidate"] == decision["candidate"]
    assert len(policy.feature_names) == 19
    assert policy.manifest["data_window"]["end"] == str(DAYS[1])
    assert set(policy.manifest["estimates"]) >= {"dm", "dr", "snpdis"}
    actions = policy.predict(np.zeros((4, 19), dtype=np.float32))
    assert actions.shape == (4,) and ((actions >= 0) & (actions < 6)).all()
    # served with the domain's exploration, promising its value as served, and knowing
    # what its training data covered
    assert policy.manifest["exploration"] == RECOMMENDATION.exploration.as_dict()
    promise = policy.manifest["promise"]
    assert promise["estimator"] == decision["headline_estimator"]
    assert promise["low"] <= promise["value"] <= promise["high"]
    served = policy.sample(np.zeros((4, 19), dtype=np.float32), np.random.default_rng(0))
    assert ((served.propensity > 0) & (served.propensity <= 1)).all()
    ranges = policy.manifest["feature_ranges"]
    assert set(ranges) == set(policy.feature_names)
    assert all(lo <= hi for lo, hi in ranges.values())
    far = np.zeros((2, 19), dtype=np.float32)
    far[1, 0] = 1e30
    assert [row for row, _, _ in policy.outside_training_ranges(far)] == [1]
    # two segments at once stays inside every feature's range, but breaks the one-hot group
    assert policy.manifest["one_hot_groups"] == {
        "segment": [f"segment_{i}" for i in range(4)],
        "device": ["device_mobile", "device_desktop"]}
    rows = np.zeros((2, 19), dtype=np.float32)
    rows[:, 0] = rows[:, 4] = 1.0
    rows[1, 1] = 1.0
    assert not policy.outside_training_ranges(rows)
    assert policy.one_hot_violations(rows) == [(1, "segment", [1.0, 1.0, 0.0, 0.0])]


def test_rerunning_the_nightly_partition_is_idempotent(run_home):
    paths, resources, instance, _ = run_home
    wh = Warehouse(paths.warehouse)
    before = wh.read_partitions("recommendation_transitions", DAYS[1], DAYS[1])
    versions_before = sorted(p.name for p in (paths.exports / "recommendation").glob("v*")) \
        if (paths.exports / "recommendation").exists() else []
    assert dg.materialize(ALL, partition_key=str(DAYS[1]), resources=resources,
                          instance=instance, run_config=TINY).success
    after = wh.read_partitions("recommendation_transitions", DAYS[1], DAYS[1])
    assert before.equals(after)
    decisions = wh.query("registry/select_decisions", domain="recommendation")
    assert decisions.filter(pl.col("partition_date") == DAYS[1]).height == 1
    versions_after = sorted(p.name for p in (paths.exports / "recommendation").glob("v*")) \
        if (paths.exports / "recommendation").exists() else []
    assert versions_after == versions_before


def test_cli_rolls_out_lists_and_rolls_back_exports(run_home, capsys):
    from offline_rl.cli import main

    paths, _, _, _ = run_home
    home = str(paths.home)
    version_dir = paths.exports / "recommendation" / (
        paths.exports / "recommendation" / "latest").read_text().strip()
    out = paths.home / "rollout.json"
    assert main(["--home", home, "rollout", "--policy", str(version_dir), "--episodes", "3000",
                 "--json", str(out)]) == 0
    promoted = json.loads(out.read_text())["mean"]
    assert main(["--home", home, "rollout", "--policy", "behavior", "--episodes", "3000",
                 "--json", str(out)]) == 0
    assert promoted > json.loads(out.read_text())["mean"]
    capsys.readouterr()
    assert main(["--home", home, "exports", "list"]) == 0
    assert "* v0001" in capsys.readouterr().out
    assert main(["--home", home, "exports", "rollback"]) == 2  # nothing older than v0001
    assert "no version before" in capsys.readouterr().err
