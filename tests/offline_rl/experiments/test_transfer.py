"""The transfer experiment: segments split the simulator; every variant is valued."""

from __future__ import annotations

import numpy as np
import pytest

from offline_rl.experiments.transfer import (
    VARIANTS,
    TransferConfig,
    format_transfer,
    pricing_category_split,
    run_transfer,
)
from offline_rl.simulator.rollouts import behavior_rollouts


def test_segments_start_episodes_only_in_their_categories():
    target, rest = pricing_category_split("default", 2)
    cat = target.world.catalogue.category_id[target.pool.item]
    rng = np.random.default_rng(0)
    assert (cat[target.reset(500, rng).sku] == 2).all()
    assert (cat[rest.reset(500, rng).sku] != 2).all()
    data = behavior_rollouts(target, 50, seed=1)
    assert data.observations.shape[1] == target.observation_size
    with pytest.raises(ValueError, match="category"):
        pricing_category_split("default", 99)


@pytest.mark.slow
def test_tiny_transfer_run_values_every_variant():
    cfg = TransferConfig(small_episodes=40, pool_episodes=300, plenty_episodes=300,
                         n_steps=200, finetune_steps=100, truth_episodes=2000, seeds=(0, 1))
    result = run_transfer(cfg)
    assert [r["seed"] for r in result["per_seed"]] == [0, 1]
    for v in VARIANTS:
        s = result["summary"][v]
        assert np.isfinite(s["mean"]) and s["std"] >= 0
    assert result["summary"]["behavior"]["uplift_vs_behavior"] == 0.0
    assert "warm_start" in format_transfer(result)
