"""The simulated shop serving an export: same customers, the export's actions, its logged
propensities recomputable from the manifest and the features alone."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from offline_rl.data.schemas import SOURCES
from offline_rl.domains import get_domain
from offline_rl.export.exploration import Exploration, allowed_actions, serving_probabilities
from offline_rl.paths import DataPaths
from offline_rl.shop import write_landing
from offline_rl.simulator.serving import SHOP_RULE, LoggingPolicy

DAY = dt.date(2026, 10, 1)


def _export(domain_name: str, exports, exploration: Exploration) -> str:
    """Trains a small behaviour-cloning model on simulated logs and publishes it."""
    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory

    from offline_rl.data.arrays import to_mdp_dataset
    from offline_rl.export.build import build_export
    from offline_rl.export.loader import POLICY_FILE
    from offline_rl.export.registry import publish
    from offline_rl.simulator.rollouts import behavior_rollouts

    domain = get_domain(domain_name)
    data = behavior_rollouts(domain.make_simulator("default"), 300, seed=1)
    d3rlpy.seed(0)
    algo = d3rlpy.algos.DiscreteBCConfig(batch_size=64).create(device="cpu")
    algo.fit(to_mdp_dataset(data, domain.n_actions), n_steps=60, n_steps_per_epoch=60,
             show_progress=False, save_interval=10**9, logger_adapter=NoopAdapterFactory())
    built = build_export(algo, exports / "_build", feature_names=list(domain.feature_names),
                         action_map=dict(enumerate(domain.action_names)),
                         action_mask_feature=list(domain.mask_features) or None,
                         exploration=exploration)
    return publish(exports, domain_name, built.files[POLICY_FILE], built.manifest,
                   extra_files=built.extra_files).version


@pytest.mark.parametrize("domain_name", ["cart", "inventory"])
def test_served_logs_carry_the_exports_propensities(domain_name, tmp_path):
    from offline_rl.export.loader import load_latest
    from offline_rl.pipeline import build_transitions_partition, ingest_partition

    domain = get_domain(domain_name)
    exports = tmp_path / "exports"
    version = _export(domain_name, exports, Exploration("epsilon", 0.2))
    tables = {}
    for label, serve in (("shop", None), ("served", exports)):
        home = tmp_path / label
        summary = write_landing(home, days=1 + domain.lookahead_days, start=DAY, seed=5,
                                events_per_day=3000, serve=serve)
        assert summary.served[domain_name] == (version if serve else SHOP_RULE)
        assert summary.served["recommendation"] == SHOP_RULE  # nothing promoted there
        paths = DataPaths(home)
        for day in summary.days:
            for source in domain.sources:
                ingest_partition(paths, SOURCES[source], day)
        tables[label] = build_transitions_partition(paths, domain, DAY)
    shop, served = tables["shop"], tables["served"]
    # the same customers arrive whatever serves them
    first = pl.col("step") == 0
    assert shop.filter(first)["episode_id"].to_list() == \
        served.filter(first)["episode_id"].to_list()
    # the logged propensities are the serving head's, recomputed from the manifest and the
    # transitions' features alone
    policy = load_latest(exports, domain_name)
    x = served.select(domain.feature_columns).to_numpy().astype(np.float32)
    greedy, values = policy.predict_with_values(x)
    allowed, _ = allowed_actions(x, domain.mask_indices or None, domain.n_actions)
    probs = serving_probabilities(greedy, values, allowed, policy.exploration)
    logged = served["behavior_prob"].to_numpy()
    recomputed = probs[np.arange(len(x)), served["action"].to_numpy()]
    agree = np.isclose(recomputed, logged, atol=1e-6)
    assert agree.all(), f"{(~agree).sum()} of {len(x)} propensities differ"
    # and the served actions are the export's: mostly greedy, unlike the shop's rule
    greedy_share = float((served["action"].to_numpy() == greedy).mean())
    assert greedy_share > 0.75
    assert float((shop["action"].to_numpy() == greedy[: shop.height]).mean()) < greedy_share \
        or shop.height != served.height


def test_a_served_export_needs_a_serving_head(tmp_path):
    from offline_rl.export.loader import ExportError, load_latest

    exports = tmp_path / "exports"
    import d3rlpy  # noqa: F401  (the export below needs the training stack)

    from offline_rl.export.build import build_export
    from offline_rl.export.loader import POLICY_FILE
    from offline_rl.export.registry import publish

    _export("cart", exports, Exploration("epsilon", 0.2))
    greedy_only = load_latest(exports, "cart")
    assert LoggingPolicy.served(greedy_only).name == "v0001"
    manifest = {k: v for k, v in greedy_only.manifest.items()
                if k not in ("exploration", "serving")}
    del build_export
    publish(exports, "cart", greedy_only.path / POLICY_FILE, manifest)
    with pytest.raises(ExportError, match="no serving head"):
        LoggingPolicy.served(load_latest(exports, "cart"))
