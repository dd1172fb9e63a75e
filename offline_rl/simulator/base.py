"""What every decision domain's simulator provides, and the generic tools built on it.

A domain simulator advances a batch of independent episodes at once (numpy over the batch).
On top of that protocol this module gives a gymnasium environment (one episode) and
``true_value``: the expected undiscounted return of any policy, estimated by rollouts. That is
the ground truth the off-policy estimates and the promotion gate are checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

PolicyFn = Callable[[np.ndarray], np.ndarray]
"""A deterministic policy: observations ``[n, features]`` -> actions ``[n]`` (ints)."""


class StepResultProtocol(Protocol):
    reward: np.ndarray
    done: np.ndarray


class DomainSimulatorProtocol(Protocol):
    """Vectorised dynamics of one decision domain.

    ``step`` must accept every row of a batch, also rows whose episode is already done
    (their results are ignored), and every episode must end within a bounded number of steps.
    """

    name: str
    n_actions: int
    observation_size: int
    feature_names: list[str]

    def reset(self, n: int, rng: np.random.Generator) -> Any: ...

    def observe(self, state: Any) -> np.ndarray: ...

    def behavior_probs(self, state: Any) -> np.ndarray: ...

    def action_mask(self, state: Any) -> np.ndarray | None: ...

    def step(self, state: Any, action: np.ndarray,
             rng: np.random.Generator) -> StepResultProtocol: ...


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of ``probs`` (inverse CDF, vectorised)."""
    u = rng.random(probs.shape[0])[:, None]
    return (u > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, probs.shape[1] - 1)


@dataclass(frozen=True)
class RolloutResult:
    """Mean undiscounted return of a policy with its standard error."""

    mean: float
    stderr: float
    episodes: int
    mean_length: float

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "stderr": self.stderr, "episodes": self.episodes,
                "mean_length": self.mean_length}


BEHAVIOR = "behavior"


def true_value(
    sim: DomainSimulatorProtocol,
    policy: PolicyFn | str,
    *,
    episodes: int = 20_000,
    seed: int = 0,
    max_steps: int = 10_000,
) -> RolloutResult:
    """Expected return of ``policy`` (or ``"behavior"``) by ``episodes`` simulator rollouts.

    Actions a policy returns that the domain masks out raise ``ValueError``: a policy that
    does that would be rejected by the shop's systems, so its value is undefined.
    """
    rng = np.random.default_rng(seed)
    state = sim.reset(episodes, rng)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    for _ in range(max_steps):
        if not alive.any():
            break
        obs = sim.observe(state)
        if isinstance(policy, str):
            if policy != BEHAVIOR:
                raise ValueError(f"unknown policy name {policy!r}; use {BEHAVIOR!r} or a callable")
            action = sample_actions(sim.behavior_probs(state), rng)
        else:
            action = np.asarray(policy(obs)).reshape(-1).astype(np.int64)
            if action.shape[0] != episodes:
                raise ValueError(f"policy returned {action.shape[0]} actions for {episodes} states")
            if action.min() < 0 or action.max() >= sim.n_actions:
                raise ValueError(f"policy returned an action outside [0, {sim.n_actions})")
            mask = sim.action_mask(state)
            if mask is not None and not mask[np.arange(episodes), action][alive].all():
                raise ValueError("policy chose an action the domain masks out")
        out = sim.step(state, action, rng)
        returns += np.where(alive, out.reward, 0.0)
        lengths += alive
        alive &= ~out.done
    else:
        raise RuntimeError(f"episodes did not end within {max_steps} steps")
    return RolloutResult(
        mean=float(returns.mean()),
        stderr=float(returns.std(ddof=1) / np.sqrt(episodes)) if episodes > 1 else float("nan"),
        episodes=episodes,
        mean_length=float(lengths.mean()),
    )


class DomainEnv(gym.Env):  # type: ignore[misc]
    """A gymnasium view of one episode of a domain simulator.

    ``info`` carries the behaviour policy's probabilities and the action mask (if any).
    """

    metadata = {"render_modes": []}

    def __init__(self, sim: DomainSimulatorProtocol) -> None:
        self.sim = sim
        self.observation_space = gym.spaces.Box(
            low=-np.inf, high=np.inf, shape=(sim.observation_size,), dtype=np.float32
        )
        self.action_space = gym.spaces.Discrete(sim.n_actions)
        self._state: Any = None
        self._rng = np.random.default_rng()

    def _info(self) -> dict[str, Any]:
        mask = self.sim.action_mask(self._state)
        return {
            "behavior_probs": self.sim.behavior_probs(self._state)[0],
            "action_mask": None if mask is None else mask[0],
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._state = self.sim.reset(1, self._rng)
        return self.sim.observe(self._state)[0].astype(np.float32), self._info()

    def step(self, action: int):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        out = self.sim.step(self._state, np.array([int(action)]), self._rng)
        obs = self.sim.observe(self._state)[0].astype(np.float32)
        done = bool(out.done[0])
        return obs, float(out.reward[0]), done, False, self._info()
