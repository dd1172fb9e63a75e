"""MLflow tracking against a real local store (SQLite database, file artifacts)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mlflow")

from offline_rl.export.exploration import Exploration  # noqa: E402
from offline_rl.export.loader import load_latest  # noqa: E402
from offline_rl.export.registry import publish, rollback  # noqa: E402
from offline_rl.ope.diagnostics import Diagnostics  # noqa: E402
from offline_rl.ope.estimators import Estimate  # noqa: E402
from offline_rl.ope.evaluate import PolicyEvaluation  # noqa: E402
from offline_rl.ope.gate import GateConfig, Incumbent, decide  # noqa: E402
from offline_rl.tracking import (  # noqa: E402
    CHAMPION,
    MLFLOW_ARTIFACTS_ENV,
    MLFLOW_URI_ENV,
    Tracked,
    Tracker,
)

FEATURES = ["a", "b", "c"]
DAY = dt.date(2026, 10, 7)


def tracker_at(tmp_path) -> Tracker:
    return Tracker(uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                   artifact_root=(tmp_path / "mlartifacts").as_uri())


def _client(tracker: Tracker):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracker.uri, registry_uri=tracker.uri)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two tiny behaviour-cloning exports with serving heads (different weights)."""
    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory

    from offline_rl.export.build import build_export

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(200, 3)).astype(np.float32)
    dataset = d3rlpy.dataset.MDPDataset(
        obs, (obs[:, 0] > 0).astype(int) + (obs[:, 1] > 0), rng.normal(size=200),
        np.repeat([0.0] * 9 + [1.0], 20), action_space=d3rlpy.ActionSpace.DISCRETE,
        action_size=3)
    out = []
    for seed in (0, 1):
        d3rlpy.seed(seed)
        algo = d3rlpy.algos.DiscreteBCConfig(batch_size=32).create(device="cpu")
        algo.fit(dataset, n_steps=40, n_steps_per_epoch=40, show_progress=False,
                 save_interval=10**9, logger_adapter=NoopAdapterFactory())
        out.append(build_export(algo, tmp_path_factory.mktemp(f"built{seed}"),
                                feature_names=FEATURES, action_map={0: "x", 1: "y", 2: "z"},
                                exploration=Exploration("epsilon", 0.2)))
    return out


def _publish(root, built, day):
    manifest = {**built.manifest, "candidate": "bc", "algorithm": "DiscreteBC",
                "decision": {"partition_date": day, "reasons": ["bc: good enough"]}}
    return publish(root, "shop", built.torchscript, manifest, extra_files=built.extra_files)


def test_off_unless_a_uri_is_set(monkeypatch):
    monkeypatch.delenv(MLFLOW_URI_ENV, raising=False)
    assert Tracker.resolve() is None
    assert Tracker.resolve("  ") is None
    monkeypatch.setenv(MLFLOW_URI_ENV, "sqlite:///x.db")
    monkeypatch.setenv(MLFLOW_ARTIFACTS_ENV, "file:///srv/art/")
    assert Tracker.resolve() == Tracker("sqlite:///x.db", "file:///srv/art")
    assert Tracker.resolve("http://mlflow:5000", "s3://b/a") == Tracker("http://mlflow:5000",
                                                                         "s3://b/a")


def test_champion_follows_promotions_and_rollbacks(tmp_path, built, monkeypatch):
    import mlflow.pyfunc

    tracker = tracker_at(tmp_path)
    root = tmp_path / "exports"
    assert tracker.sync_champion(root, "shop").message.startswith("no export of shop yet")
    _publish(root, built[0], "2026-10-06")
    first = tracker.sync_champion(root, "shop")
    assert first.ok and "registered and models:/shop@champion -> version 1" in first.message
    _publish(root, built[1], "2026-10-07")
    assert "-> version 2 (export v0002)" in tracker.sync_champion(root, "shop").message
    client = _client(tracker)
    assert client.get_model_version_by_alias("shop", CHAMPION).tags["export_version"] == "v0002"
    # idempotent: syncing again registers nothing
    assert tracker.sync_champion(root, "shop").message.startswith("models:/shop@champion")
    assert len(client.search_model_versions("name = 'shop'")) == 2

    rollback(root, "shop")
    moved = tracker.sync_champion(root, "shop")
    assert moved.ok and "-> version 1 (export v0001)" in moved.message
    champion = client.get_model_version_by_alias("shop", CHAMPION)
    assert str(champion.version) == "1" and champion.tags["export_version"] == "v0001"
    assert champion.tags["candidate"] == "bc" and champion.tags["partition_date"] == "2026-10-06"
    assert len(client.search_model_versions("name = 'shop'")) == 2

    rows = pd.DataFrame(np.random.default_rng(5).normal(size=(50, 3)), columns=FEATURES)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.uri)  # what models:/ URIs resolve on
    model = mlflow.pyfunc.load_model("models:/shop@champion")
    served = load_latest(root, "shop").sample(rows.to_numpy(np.float32),
                                               np.random.default_rng(11))
    out = model.predict(rows, params={"seed": 11})
    np.testing.assert_array_equal(out["action"].to_numpy(), served.action)
    np.testing.assert_allclose(out["propensity"].to_numpy(), served.propensity)


def test_a_damaged_latest_is_not_registered(tmp_path, built):
    tracker = tracker_at(tmp_path)
    root = tmp_path / "exports"
    exported = _publish(root, built[0], "2026-10-06")
    (exported.path / "serving.pt").write_bytes(b"tampered")
    outcome = tracker.sync_champion(root, "shop")
    assert not outcome.ok and "serving.pt fails its checksum" in outcome.message
    assert outcome.metadata()["mlflow"].startswith("WARNING: shop champion alias not logged")


def test_evaluation_and_decision_runs(tmp_path):
    tracker = tracker_at(tmp_path)
    healthy = Diagnostics(ess=400.0, ess_fraction=0.4, per_decision_ess_fraction=0.5,
                          max_weight_share=0.01, rare_action_rate=0.0, action_match_rate=0.6)
    behavior = Estimate("behavior", 10.0, 9.0, 11.0, 0.5)
    evaluations = [PolicyEvaluation(
        name, {"dr": Estimate("dr", v, v - 0.5, v + 0.5, 0.25),
               "snpdis": Estimate("snpdis", float("nan"), float("nan"), float("nan"),
                                  float("nan"))}, healthy, 0.1)
        for name, v in (("bc", 10.1), ("cql", 14.0))]
    outcome = tracker.log_evaluation("shop", DAY, behavior, evaluations,
                                     config={"n_bootstrap": 100, "alpha": 0.1},
                                     forest_png=b"\x89PNG\r\n\x1a\nfake")
    assert outcome.ok, outcome.message
    decision = decide(evaluations, Incumbent("behavior", 10.0, 9.0, 11.0),
                      GateConfig(headline="dr", min_ess_fraction=0.0))
    report = tmp_path / "report.md"
    report.write_text("# report")
    assert tracker.log_decision("shop", DAY, decision, [report]).ok

    client = _client(tracker)
    experiment = client.get_experiment_by_name("shop")
    assert experiment.artifact_location == (tmp_path / "mlartifacts" / "shop").as_uri()
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {f"ope {DAY}", f"ope bc {DAY}", f"ope cql {DAY}", f"gate {DAY}"}
    parent = runs[f"ope {DAY}"]
    assert parent.data.metrics["behavior_value"] == 10.0
    assert parent.data.params["n_bootstrap"] == "100"
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "ope")} == {
        "ope/estimates.json", "ope/forest_plot.png"}
    cql = runs[f"ope cql {DAY}"]
    assert cql.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert cql.data.metrics["dr"] == 14.0 and cql.data.metrics["dr_low"] == 13.5
    assert cql.data.metrics["ess"] == 400.0 and cql.data.metrics["max_weight_share"] == 0.01
    assert np.isnan(cql.data.metrics["snpdis"])
    gate = runs[f"gate {DAY}"]
    assert gate.data.tags["promoted"] == str(decision.promoted).lower()
    assert gate.data.tags["candidate"] == (decision.candidate or "")
    assert gate.data.tags["mlflow.note.content"].startswith("- ")
    assert gate.data.metrics["promoted"] == float(decision.promoted)
    assert gate.data.params["headline"] == "dr"
    assert {a.path for a in client.list_artifacts(gate.info.run_id, "gate")} == {
        "gate/decision.json", "gate/report.md"}


def test_an_unreachable_server_is_a_quick_warning(tmp_path, built, caplog):
    root = tmp_path / "exports"
    _publish(root, built[0], "2026-10-06")
    tracker = Tracker("http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="offline_rl.tracking"):
        outcome = tracker.sync_champion(root, "shop")
    assert time.perf_counter() - started < 30
    assert not outcome.ok
    assert "not logged to MLflow at http://127.0.0.1:9" in outcome.message
    assert "http://127.0.0.1:9" in caplog.text


def _log_one_training(args: tuple[Tracker, str, int]) -> Tracked:
    """A step process of the nightly job: one candidate's training run."""
    tracker, folder, i = args
    directory = Path(folder) / f"c{i}"
    directory.mkdir()
    (directory / "training.json").write_text(json.dumps(
        {"name": f"c{i}", "algorithm": "DQN", "learning_curve": [{"step": 5, "loss": 0.5}]}))
    return tracker.log_training(f"domain{i % 2}", DAY, [directory])


def test_parallel_steps_share_a_new_sqlite_store(tmp_path):
    """The first use of a SQLite store creates its tables: parallel steps take turns. Without
    an artifact root, artifacts go beside the database."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    tracker = Tracker(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    context = multiprocessing.get_context("fork")  # the children use mlflow only
    with ProcessPoolExecutor(3, mp_context=context) as pool:
        outcomes = list(pool.map(_log_one_training,
                                 [(tracker, str(tmp_path), i) for i in range(3)]))
    assert [o.ok for o in outcomes] == [True] * 3, [o.message for o in outcomes]
    client = _client(tracker)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.run_name for r in runs) == [f"train c{i} {DAY}" for i in range(3)]
    location = client.get_experiment_by_name("domain0").artifact_location
    assert location == (tmp_path / "store" / "mlartifacts" / "domain0").as_uri()
    assert any((tmp_path / "store" / "mlartifacts" / "domain0").rglob("training.json"))
