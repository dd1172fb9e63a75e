"""Transitions as numpy arrays and d3rlpy datasets: the form training and OPE consume."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import polars as pl


@dataclass(frozen=True)
class DecisionArrays:
    """Transitions as numpy arrays, sorted by (episode, step), for training and OPE.

    ``extras``: further logged columns by name, row-aligned (what a domain's replay reads,
    ``Domain.replay``); empty unless asked for.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    behavior_prob: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    def select(self, rows: np.ndarray) -> DecisionArrays:
        """The given rows (a boolean mask or indices) of every array, ``extras`` too."""
        return DecisionArrays(
            **{f.name: getattr(self, f.name)[rows] for f in fields(self) if f.name != "extras"},
            extras={name: values[rows] for name, values in self.extras.items()})


def decision_arrays(transitions: pl.DataFrame, feature_columns: list[str],
                    extra_columns: Sequence[str] = ()) -> DecisionArrays:
    """Numpy view of a transitions table (sorted by ``episode_id, step``).

    ``extra_columns`` present in the table go to ``extras`` (float64; absent ones are left
    out, for the reader to notice). Raises ``ValueError`` if an episode does not end in
    exactly one terminal or timeout.
    """
    if transitions.is_empty():
        raise ValueError("no transitions in the requested window")
    t = transitions.sort("episode_id", "step").with_columns(
        _ep=pl.col("episode_id").rank("dense").cast(pl.Int64) - 1
    )
    ends = t.group_by("episode_id").agg(
        n_end=(pl.col("terminal") | pl.col("timeout")).sum(),
        last_is_end=(pl.col("terminal") | pl.col("timeout")).last(),
    )
    broken = ends.filter((pl.col("n_end") != 1) | ~pl.col("last_is_end"))
    if broken.height:
        raise ValueError(
            f"{broken.height} episode(s) do not end in exactly one terminal/timeout, "
            f"e.g. {broken['episode_id'][0]!r}"
        )
    return DecisionArrays(
        observations=t.select(feature_columns).to_numpy().astype(np.float32),
        actions=t["action"].to_numpy().astype(np.int64),
        rewards=t["reward"].to_numpy().astype(np.float32),
        terminals=t["terminal"].to_numpy().astype(np.float32),
        timeouts=t["timeout"].to_numpy().astype(np.float32),
        behavior_prob=t["behavior_prob"].to_numpy().astype(np.float64),
        episode=t["_ep"].to_numpy(),
        step=t["step"].to_numpy().astype(np.int64),
        extras={c: t[c].cast(pl.Float64).to_numpy() for c in extra_columns
                if c in t.columns},
    )


def to_mdp_dataset(arrays: DecisionArrays, n_actions: int):  # -> d3rlpy MDPDataset
    """A d3rlpy ``MDPDataset`` with the episode boundaries of ``arrays``."""
    from d3rlpy.constants import ActionSpace
    from d3rlpy.dataset import MDPDataset

    return MDPDataset(
        observations=arrays.observations,
        actions=arrays.actions.reshape(-1, 1),
        rewards=arrays.rewards.reshape(-1, 1),
        terminals=arrays.terminals,
        timeouts=arrays.timeouts,
        action_space=ActionSpace.DISCRETE,
        action_size=n_actions,
    )
