"""Logged data straight from a simulator: behaviour-policy rollouts as decision arrays.

Equivalent to simulating landing logs and building transitions from them (a test checks the
recommendation domain's logs rebuild exactly these states), but without the files, for
experiments that need many data sets quickly (transfer, OPE validation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from offline_rl.data.arrays import DecisionArrays
from offline_rl.simulator.base import rollout_streams, sample_actions


def behavior_rollouts(sim: Any, episodes: int, seed: int, max_steps: int = 10_000,
                      ) -> DecisionArrays:
    """``episodes`` episodes of ``sim`` under its behaviour policy, sorted by (episode, step).

    Every episode runs to its end, so each one's last step is a terminal. A simulator with
    ``decision_columns(state)`` and ``outcome_columns(step)`` (the inventory one) also logs
    those raw fields in ``extras``, as its landing logs would.

    The episodes are those of ``true_value(sim, "behavior", episodes=episodes, seed=seed)``:
    the starts and dynamics come from the dynamics stream of ``rollout_streams(seed)`` and the
    logged actions from its action stream, so the returns logged here are the ones that
    value averages.
    """
    if episodes < 1:
        raise ValueError("episodes must be at least 1")
    dynamics, actions = rollout_streams(seed)
    state = sim.reset(episodes, dynamics)
    alive = np.ones(episodes, dtype=bool)
    obs, act, prob, rew, done, ep, step = [], [], [], [], [], [], []
    logs_fields = hasattr(sim, "decision_columns") and hasattr(sim, "outcome_columns")
    fields: dict[str, list[np.ndarray]] = {}
    for t in range(max_steps):
        if not alive.any():
            break
        o = sim.observe(state)
        p = sim.behavior_probs(state)
        a = sample_actions(p, actions)
        before = sim.decision_columns(state) if logs_fields else {}
        out = sim.step(state, a, dynamics)
        idx = np.flatnonzero(alive)
        if logs_fields:
            for name, values in {**before, **sim.outcome_columns(out)}.items():
                fields.setdefault(name, []).append(np.asarray(values)[idx])
        obs.append(o[idx])
        act.append(a[idx])
        prob.append(p[idx, a[idx]])
        rew.append(np.asarray(out.reward)[idx])
        done.append(np.asarray(out.done)[idx])
        ep.append(idx)
        step.append(np.full(idx.size, t))
        alive &= ~np.asarray(out.done)
    else:
        raise RuntimeError(f"episodes did not end within {max_steps} steps")
    episode = np.concatenate(ep)
    steps = np.concatenate(step)
    order = np.lexsort((steps, episode))
    terminals = np.concatenate(done)[order].astype(np.float32)
    return DecisionArrays(
        observations=np.concatenate(obs)[order].astype(np.float32),
        actions=np.concatenate(act)[order].astype(np.int64),
        rewards=np.concatenate(rew)[order].astype(np.float32),
        terminals=terminals,
        timeouts=np.zeros_like(terminals),
        behavior_prob=np.concatenate(prob)[order].astype(np.float64),
        episode=episode[order].astype(np.int64),
        step=steps[order].astype(np.int64),
        extras={name: np.concatenate(parts)[order].astype(np.float64)
                for name, parts in fields.items()},
    )
