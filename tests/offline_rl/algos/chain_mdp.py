"""Tiny MDPs for the training tests: a two-step chain whose third action is masked.

Imported by the tests of this folder (``from chain_mdp import ...``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from offline_rl.algos.training import TrainingConfig

FEATURES = ["first", "second", "noise", "allow_0", "allow_1", "allow_2"]
MASK = [3, 4, 5]
N_ACTIONS = 3

FIRST = np.array([1, 0, 0, 1, 1, 0], dtype=np.float32)
SECOND = np.array([0, 1, 0, 1, 1, 0], dtype=np.float32)


def chain_dataset(episodes: int = 64, seed: int = 0):
    """Episodes ``FIRST -> SECOND -> end``; action 2 is forbidden (and never logged) in both.

    In ``FIRST`` actions 0 and 1 pay 0 and lead to ``SECOND``; there action 0 pays 1 and
    action 1 pays 0, then the episode ends. The best allowed value of ``FIRST`` is ``gamma``.
    """
    import d3rlpy

    rng = np.random.default_rng(seed)
    obs = np.tile(np.stack([FIRST, SECOND]), (episodes, 1))
    obs[:, 2] = rng.normal(scale=0.01, size=len(obs))  # tiny noise: distinct rows
    actions = rng.integers(0, 2, size=len(obs))
    rewards = np.where((np.arange(len(obs)) % 2 == 1) & (actions == 0), 1.0, 0.0)
    terminals = (np.arange(len(obs)) % 2 == 1).astype(np.float32)
    return d3rlpy.dataset.MDPDataset(
        obs.astype(np.float32), actions, rewards.astype(np.float32), terminals,
        action_space=d3rlpy.ActionSpace.DISCRETE, action_size=N_ACTIONS)


def random_rows(n: int, seed: int = 0, *, allow_none: bool = False) -> np.ndarray:
    """Random observations with random 0/1 masks (at least one allowed unless ``allow_none``)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    masks = rng.integers(0, 2, size=(n, N_ACTIONS))
    if not allow_none:
        masks[masks.sum(axis=1) == 0, rng.integers(0, N_ACTIONS)] = 1
    x[:, MASK] = masks
    return x


def tiny_config() -> TrainingConfig:
    """20 steps of a one-layer network: enough to build, save and load in well under a second."""
    return TrainingConfig(n_steps=20, steps_per_epoch=10, batch_size=32, hidden_units=(16,),
                          target_update_interval=20, reward_scale=1.0, device="cpu")


def with_(config: TrainingConfig, **changes) -> TrainingConfig:
    return dataclasses.replace(config, **changes)
