"""The monitor asset: an automatic rollback moves the MLflow champion alias with latest."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl
import pytest

pytest.importorskip("mlflow")

from assets.monitoring import monitor_asset  # noqa: E402
from offline_rl.data.warehouse import Warehouse  # noqa: E402
from offline_rl.domains import get_domain  # noqa: E402
from offline_rl.export.exploration import Exploration  # noqa: E402
from offline_rl.export.registry import current_version, publish  # noqa: E402
from offline_rl.paths import DataPaths  # noqa: E402
from offline_rl.tracking import CHAMPION, Tracker  # noqa: E402
from orchestration.resources import DataHome  # noqa: E402

CART = get_domain("cart")
DAY = dt.date(2026, 10, 20)


def _export(tmp_path, seed: int):
    """A tiny behaviour-cloning export with a serving head (the monitor reads only its
    manifest; MLflow registers it as a pyfunc)."""
    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory

    from offline_rl.export.build import build_export

    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(100, 2)).astype(np.float32)
    dataset = d3rlpy.dataset.MDPDataset(
        obs, (obs[:, 0] > 0).astype(int), rng.normal(size=100), np.repeat([0.0] * 9 + [1.0], 10),
        action_space=d3rlpy.ActionSpace.DISCRETE, action_size=2)
    d3rlpy.seed(seed)
    algo = d3rlpy.algos.DiscreteBCConfig(batch_size=16).create(device="cpu")
    algo.fit(dataset, n_steps=10, n_steps_per_epoch=10, show_progress=False,
             save_interval=10**9, logger_adapter=NoopAdapterFactory())
    return build_export(algo, tmp_path / f"built{seed}", feature_names=["a", "b"],
                        exploration=Exploration("epsilon", 0.1))


def _transitions(day: dt.date, policy: str, returns: np.ndarray) -> pl.DataFrame:
    """Two-step episodes whose returns are ``returns`` (reward on the last step)."""
    n = returns.shape[0]
    ids = [f"{day:%Y%m%d}-{policy}-{i}" for i in range(n)]
    return pl.DataFrame({
        "partition_date": [day] * (2 * n), "episode_id": ids + ids,
        "step": [0] * n + [1] * n, "policy_version": [policy] * (2 * n),
        "reward": np.r_[np.zeros(n), returns], "terminal": [False] * n + [True] * n})


def test_an_automatic_rollback_moves_the_champion(tmp_path):
    from mlflow import MlflowClient

    paths = DataPaths(tmp_path / "home")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, (tmp_path / "mlartifacts").as_uri())
    versions = []
    for seed, (value, low, high) in enumerate([(10.0, 9.5, 10.5), (12.0, 11.0, 13.0)]):
        built = _export(tmp_path, seed)
        promise = {"estimator": "dr", "value": value, "low": low, "high": high, "stderr": 0.1}
        versions.append(publish(paths.exports, "cart", built.torchscript,
                                {**built.manifest, "promise": promise},
                                extra_files=built.extra_files).version)
    assert tracker.sync_champion(paths.exports, "cart").ok  # the export step's registration
    # v0001 served three start days (worth 10), v0002 the next three (worth 8, promised 12)
    rng = np.random.default_rng(0)
    last = DAY - dt.timedelta(days=CART.lookahead_days)
    wh = Warehouse(paths.warehouse)
    for k in range(6):
        day = last - dt.timedelta(days=5 - k)
        served, mean = (versions[0], 10.0) if k < 3 else (versions[1], 8.0)
        wh.replace_partition(CART.transitions_table,
                             _transitions(day, served, rng.normal(mean, 2.0, 400)), day=day)

    result = dg.materialize(
        [monitor_asset(CART)], partition_key=str(DAY),
        resources={"data_home": DataHome(home=str(paths.home), mlflow_uri=uri,
                                         mlflow_artifacts=(tmp_path / "mlartifacts").as_uri())},
        run_config={"ops": {"cart_monitor": {"config": {"auto_rollback": True,
                                                        "min_nights": 3}}}})
    assert result.success
    assert current_version(paths.exports / "cart") == versions[0] == "v0001"
    meta = result.asset_materializations_for_node("cart_monitor")[0].metadata
    assert meta["rolled_back_to"].value == "v0001"
    assert "registered and models:/cart@champion -> version 2 (export v0001)" in \
        meta["mlflow"].value
    champion = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        "cart", CHAMPION)
    assert champion.tags["export_version"] == "v0001"
