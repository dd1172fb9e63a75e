"""Tiny d3rlpy models (trained for a few dozen steps on random data) shared by the export tests."""

from __future__ import annotations

import numpy as np
import pytest

FEATURES = ["a", "b", "c", "d", "e", "f"]
ACTIONS = {"0": "books", "1": "games", "2": "music", "3": "toys"}


def _dataset(seed: int = 0, n: int = 400):
    import d3rlpy

    rng = np.random.default_rng(seed)
    obs = (rng.normal(size=(n, len(FEATURES))) * [1, 2, 3, 0.5, 1, 5] + [0, 1, -2, 0, 3, 10])
    actions = rng.integers(0, len(ACTIONS), size=n)
    rewards = (obs[:, 0] * (actions == 1) + rng.normal(size=n) * 0.1).astype(np.float32)
    terminals = np.zeros(n)
    terminals[19::20] = 1.0
    return d3rlpy.dataset.MDPDataset(
        obs.astype(np.float32), actions, rewards, terminals,
        action_space=d3rlpy.ActionSpace.DISCRETE, action_size=len(ACTIONS))


def _train(name: str):
    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.preprocessing import (
        MinMaxObservationScaler,
        MultiplyRewardScaler,
        StandardObservationScaler,
    )

    d3rlpy.seed(0)
    common = {"batch_size": 32, "encoder_factory": VectorEncoderFactory(hidden_units=[32, 32])}
    config = {
        # DoubleDQN with a standard scaler, two critics and scaled rewards: scaling, the
        # ensemble mean and undoing the reward scale must all be inside the exported graph
        "double_dqn": lambda: d3rlpy.algos.DoubleDQNConfig(
            **common, observation_scaler=StandardObservationScaler(), n_critics=2,
            reward_scaler=MultiplyRewardScaler(0.1)),
        "bc": lambda: d3rlpy.algos.DiscreteBCConfig(**common),
        "cql": lambda: d3rlpy.algos.DiscreteCQLConfig(
            **common, observation_scaler=MinMaxObservationScaler()),
        "bcq": lambda: d3rlpy.algos.DiscreteBCQConfig(**common, action_flexibility=0.3),
    }[name]()
    algo = config.create(device="cpu")
    algo.fit(_dataset(), n_steps=100, n_steps_per_epoch=100, show_progress=False,
             save_interval=10**9, logger_adapter=NoopAdapterFactory())
    return algo


@pytest.fixture(scope="session")
def features() -> list[str]:
    return list(FEATURES)


@pytest.fixture(scope="session")
def action_map() -> dict[str, str]:
    return dict(ACTIONS)


@pytest.fixture(scope="session")
def trained():
    """name -> trained algo (built lazily, once per session)."""
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = _train(name)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def built_double_dqn(trained, tmp_path_factory):
    from offline_rl.export.build import build_export

    return build_export(trained("double_dqn"), tmp_path_factory.mktemp("built"),
                        feature_names=FEATURES, action_map=ACTIONS)
