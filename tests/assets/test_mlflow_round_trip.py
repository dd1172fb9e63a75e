"""MLflow round trip on the nightly path: a tiny simulated shop's nights through the assets,
tracked in a real local store (SQLite database, file artifacts).

Night 1 promotes DoubleDQN (export v0001); the same day re-run with DQN as the only
candidate promotes it too (v0002). Then: runs, metrics and artifacts exist, both exports are
registered model versions, ``champion`` names the one ``latest`` names, the champion's pyfunc
serves what the export serves, ``exports rollback`` moves the alias back, and a night
against an unreachable server succeeds with the warning in its metadata and log.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mlflow")

from assets.evaluation import ope_asset  # noqa: E402
from assets.ingestion import raw_asset  # noqa: E402
from assets.promotion import export_asset, gate_asset  # noqa: E402
from assets.training import candidates_asset  # noqa: E402
from assets.transitions import transitions_asset  # noqa: E402
from offline_rl.data.schemas import SOURCES  # noqa: E402
from offline_rl.data.warehouse import Warehouse  # noqa: E402
from offline_rl.domains import get_domain  # noqa: E402
from offline_rl.export.loader import load_latest  # noqa: E402
from offline_rl.paths import DataPaths  # noqa: E402
from offline_rl.shop import write_landing  # noqa: E402
from offline_rl.tracking import CHAMPION  # noqa: E402
from orchestration.resources import DataHome  # noqa: E402

DOMAIN = get_domain("recommendation")
RAW = [raw_asset(SOURCES[s]) for s in DOMAIN.sources]
TRANSITIONS = transitions_asset(DOMAIN)
NIGHT = [*RAW, TRANSITIONS, candidates_asset(DOMAIN), ope_asset(DOMAIN), gate_asset(DOMAIN),
         export_asset(DOMAIN)]
DAYS = [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]


def run_config(algorithms: list[str]) -> dict:
    return {"ops": {
        "recommendation_candidates": {"config": {
            "n_steps": 600, "seed": 0, "device": "cpu", "algorithms": algorithms,
            "settle_days": 0}},
        "recommendation_ope": {"config": {"fqe_steps": 100, "n_bootstrap": 50,
                                          "device": "cpu"}},
    }}


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    # logs on which this tiny night (12,000 events a day) promotes both candidates: its
    # decisions rest on a few hundred held-out sessions, so not every seed's do
    write_landing(home, days=2, start=DAYS[0], seed=10, events_per_day=12_000)
    resources = {"data_home": DataHome(home=str(home), mlflow_uri=uri,
                                       mlflow_artifacts=(home / "mlartifacts").as_uri())}
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([*RAW, TRANSITIONS], partition_key=str(DAYS[0]), resources=resources,
                          instance=instance).success
    results = [dg.materialize(NIGHT, partition_key=str(DAYS[1]), resources=resources,
                              instance=instance, run_config=run_config(algorithms))
               for algorithms in (["bc", "double_dqn"], ["dqn"])]
    assert all(r.success for r in results)
    return DataPaths(home), uri, resources, instance, results


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _meta(result, node: str) -> dict:
    return result.asset_materializations_for_node(node)[0].metadata


def test_both_nights_promoted_and_exported(nights):
    paths, *_ = nights
    root = paths.exports / "recommendation"
    assert (root / "latest").read_text().strip() == "v0002"
    assert load_latest(paths.exports, "recommendation", "v0001").manifest["candidate"] \
        == "double_dqn"
    assert load_latest(paths.exports, "recommendation").manifest["candidate"] == "dqn"


def test_training_evaluation_and_gate_runs_are_logged(nights):
    _, uri, _, _, results = nights
    client = _client(uri)
    experiment = client.get_experiment_by_name("recommendation")
    runs = client.search_runs([experiment.experiment_id])
    by_name: dict[str, list] = {}
    for run in runs:
        by_name.setdefault(run.info.run_name, []).append(run)
    day = str(DAYS[1])
    assert {f"train bc {day}", f"train double_dqn {day}", f"train dqn {day}", f"ope {day}",
            f"ope double_dqn {day}", f"ope dqn {day}", f"gate {day}", "export v0001",
            "export v0002"} <= set(by_name)
    assert all(r.info.status == "FINISHED" for r in runs)

    train = by_name[f"train double_dqn {day}"][0]
    assert train.data.params["seed"] == "0"
    assert train.data.params["training_config.n_steps"] == "600"
    assert train.data.params["data_window.end"] == day
    assert train.data.tags["algorithm"] == "DoubleDQN"
    curve = client.get_metric_history(train.info.run_id, "loss")
    assert [m.step for m in curve] == [500, 600] and all(np.isfinite(m.value) for m in curve)
    assert {a.path for a in client.list_artifacts(train.info.run_id, "model")} == {
        "model/training.json", "model/model.d3"}

    ope = by_name[f"ope dqn {day}"][0]
    for name in ("dr", "dr_low", "dr_high", "ess", "ess_fraction", "max_weight_share"):
        assert name in ope.data.metrics
    assert ope.data.metrics["dr_low"] <= ope.data.metrics["dr"] <= ope.data.metrics["dr_high"]

    gates = sorted(by_name[f"gate {day}"], key=lambda r: r.info.start_time)
    assert [g.data.tags["candidate"] for g in gates] == ["double_dqn", "dqn"]
    assert all(g.data.tags["promoted"] == "true" and g.data.metrics["promoted"] == 1.0
               for g in gates)
    assert gates[0].data.tags["mlflow.note.content"].startswith("- promoted double_dqn over ")
    assert {"gate/decision.json", f"gate/{day}.md", f"gate/{day}.html"} == {
        a.path for a in client.list_artifacts(gates[0].info.run_id, "gate")}
    for node in ("recommendation_candidates", "recommendation_ope", "recommendation_gate"):
        assert f"at {uri}" in _meta(results[1], node)["mlflow"].value


def test_each_export_is_a_model_version_and_latest_is_the_champion(nights):
    _, uri, _, _, results = nights
    client = _client(uri)
    versions = {v.tags["export_version"]: v
                for v in client.search_model_versions("name = 'recommendation'")}
    assert set(versions) == {"v0001", "v0002"}
    assert versions["v0001"].tags["candidate"] == "double_dqn"
    assert versions["v0002"].tags["training_run_id"]
    champion = client.get_model_version_by_alias("recommendation", CHAMPION)
    assert champion.tags["export_version"] == "v0002"
    meta = _meta(results[1], "recommendation_export")["mlflow"].value
    assert f"models:/recommendation@champion -> version {champion.version}" in meta


def _serves_like_the_export(paths, uri, version: str, monkeypatch) -> None:
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    model = mlflow.pyfunc.load_model("models:/recommendation@champion")
    policy = load_latest(paths.exports, "recommendation", version)
    logged = Warehouse(paths.warehouse).read_partitions("recommendation_transitions",
                                                        DAYS[0], DAYS[1])
    rows = logged.select(DOMAIN.feature_columns).head(300).to_pandas()
    rows.columns = policy.feature_names  # the transitions' f_<name> columns
    out = model.predict(rows, params={"seed": 3})
    served = policy.sample(rows.to_numpy(np.float32), np.random.default_rng(3))
    np.testing.assert_array_equal(out["action"].to_numpy(), served.action)
    np.testing.assert_allclose(out["propensity"].to_numpy(), served.propensity)
    np.testing.assert_array_equal(out["greedy_action"].to_numpy(),
                                  policy.predict(rows.to_numpy(np.float32)))
    assert isinstance(out, pd.DataFrame) and len(out) == 300


def test_the_champion_serves_the_exports_actions_and_propensities(nights, monkeypatch):
    paths, uri, *_ = nights
    _serves_like_the_export(paths, uri, "v0002", monkeypatch)


def test_rollback_moves_the_champion(nights, monkeypatch, capsys):
    from offline_rl.cli import main

    paths, uri, *_ = nights
    assert main(["--home", str(paths.home), "exports", "rollback", "--mlflow-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "latest v0002 -> v0001" in out and "@champion -> version" in out
    champion = _client(uri).get_model_version_by_alias("recommendation", CHAMPION)
    assert champion.tags["export_version"] == "v0001"
    _serves_like_the_export(paths, uri, "v0001", monkeypatch)


def test_an_unreachable_server_does_not_fail_the_night(nights, monkeypatch):
    paths, _, resources, instance, _ = nights
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # one try (default: three)
    dead = "http://127.0.0.1:9"
    home = resources["data_home"]
    result = dg.materialize(
        NIGHT[-2:], partition_key=str(DAYS[1]), instance=instance,
        resources={"data_home": DataHome(home=home.home, mlflow_uri=dead)})
    assert result.success
    for node in ("recommendation_gate", "recommendation_export"):
        meta = _meta(result, node)["mlflow"].value
        assert meta.startswith("WARNING: ") and f"not logged to MLflow at {dead}" in meta
    warnings = [e.user_message for e in instance.all_logs(result.run_id)
                if e.level == 30 and dead in (e.user_message or "")]
    assert len(warnings) == 2
