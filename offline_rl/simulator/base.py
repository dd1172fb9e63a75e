"""What every decision domain's simulator provides, and the generic tools built on it.

A domain simulator advances a batch of independent episodes at once (numpy over the batch).
On top of that protocol this module gives a gymnasium environment (one episode),
``true_value``: the expected undiscounted return of any policy, estimated by rollouts, and
``true_values``: several policies rolled out on the same episodes, with the standard error of
each one's paired difference to a reference. That is the ground truth the off-policy
estimates and the promotion gate are checked against.

Rollouts use two random streams (:func:`rollout_streams`): one for the episodes' starts and
dynamics, one for sampling stochastic policies' actions. Two policies rolled out with the same
seed therefore start from the same customers, and at every step each episode receives the
same dynamics draws whatever the policies chose (common random numbers), as long as the
simulator's ``step`` takes the same number of draws from the stream whatever the action. A
simulator whose draw count depends on the action (a Poisson or binomial draw whose parameter
depends on it) still shares the starts, but its later dynamics draws fall out of step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

PolicyFn = Callable[[np.ndarray], np.ndarray]
"""A deterministic policy: observations ``[n, features]`` -> actions ``[n]`` (ints)."""


@dataclass(frozen=True)
class StochasticPolicy:
    """A stochastic policy: ``probs(observations [n, features]) -> [n, n_actions]``, each row
    the probabilities of the actions in that state (e.g. an export's serving head,
    ``LoadedPolicy.action_probs``). Rollouts sample its actions from the action stream."""

    probs: Callable[[np.ndarray], np.ndarray]


BEHAVIOR = "behavior"

Policy = PolicyFn | StochasticPolicy | str
"""What rollouts accept: a deterministic policy, a stochastic one, or ``BEHAVIOR`` (the
simulator's own ``behavior_probs``)."""

PROBABILITY_SUM_TOLERANCE = 1e-5
"""How far a stochastic policy's row of probabilities may sum from 1 (float32 heads)."""


class StepResultProtocol(Protocol):
    reward: np.ndarray
    done: np.ndarray


class DomainSimulatorProtocol(Protocol):
    """Vectorised dynamics of one decision domain.

    ``step`` must accept every row of a batch, also rows whose episode is already done
    (their results are ignored), and every episode must end within a bounded number of steps.
    Common random numbers between policies (see the module) need ``step`` to take the same
    number of draws from ``rng`` whatever the actions.
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


@dataclass(frozen=True)
class Simulation:
    """A decision domain's part of the simulated shop: its default dynamics and logging rule,
    how to build its simulator, and how it writes a day of landing logs.

    Attributes:
        config: The default configuration of the dynamics and the shop's logging rule (a
            frozen dataclass); a scenario may give another (``Scenario.domains``).
        make: ``make(world, config)`` -> the domain's simulator
            (:class:`DomainSimulatorProtocol`).
        generate: ``generate(world, config, day, rng, events_per_day, logging)`` -> rows per
            landing dataset: one day of the domain's logs, its decisions served by ``logging``
            (:class:`offline_rl.simulator.serving.LoggingPolicy`).
    """

    config: Any
    make: Callable[[Any, Any], Any]
    generate: Callable[..., Mapping[str, Any]]


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of ``probs`` (inverse CDF, vectorised).

    Takes exactly one uniform number per row from ``rng``. Rows are scaled to sum to 1, and an
    action of probability 0 is never drawn.
    """
    n_rows: int = probs.shape[0]
    u = rng.random(n_rows)[:, None]
    cum = np.cumsum(probs, axis=1)
    total = cum[:, -1:]
    cum = cum / np.where(total > 0, total, 1.0)
    # u lies in [0, 1) and the last cumulative value is 1, so every row draws an action a
    # with cum[a - 1] <= u < cum[a]: one whose probability is positive
    return (u >= cum).sum(axis=1).clip(0, probs.shape[1] - 1)


def rollout_streams(seed: int, batch: int = 0) -> tuple[np.random.Generator, np.random.Generator]:
    """``(dynamics, actions)``: the random streams of rollout batch ``batch`` of ``seed``.

    The first draws the episodes' starts (``reset``) and every ``step``; the second samples
    stochastic policies' actions. Distinct ``(seed, batch)`` pairs give independent streams.
    """
    dynamics, actions = np.random.SeedSequence(seed, spawn_key=(batch,)).spawn(2)
    return np.random.default_rng(dynamics), np.random.default_rng(actions)


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

    @classmethod
    def of(cls, returns: np.ndarray, lengths: np.ndarray) -> RolloutResult:
        """The result of per-episode ``returns`` and ``lengths``."""
        n = returns.shape[0]
        return cls(
            mean=float(returns.mean()),
            stderr=float(returns.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
            episodes=n,
            mean_length=float(lengths.mean()),
        )


def _deterministic_actions(sim: DomainSimulatorProtocol, policy: PolicyFn, obs: np.ndarray,
                           state: Any, alive: np.ndarray) -> np.ndarray:
    n = alive.shape[0]
    action = np.asarray(policy(obs)).reshape(-1).astype(np.int64)
    if action.shape[0] != n:
        raise ValueError(f"policy returned {action.shape[0]} actions for {n} states")
    if action.min() < 0 or action.max() >= sim.n_actions:
        raise ValueError(f"policy returned an action outside [0, {sim.n_actions})")
    mask = sim.action_mask(state)
    if mask is not None and not mask[np.arange(n), action][alive].all():
        raise ValueError("policy chose an action the domain masks out")
    return action


def _stochastic_probs(sim: DomainSimulatorProtocol, policy: StochasticPolicy, obs: np.ndarray,
                      state: Any, alive: np.ndarray) -> np.ndarray:
    n = alive.shape[0]
    probs = np.asarray(policy.probs(obs), dtype=np.float64)
    if probs.shape != (n, sim.n_actions):
        raise ValueError(f"stochastic policy returned probabilities of shape "
                         f"{list(probs.shape)}, expected [{n}, {sim.n_actions}]")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("stochastic policy returned a negative or non-finite probability")
    off = np.abs(probs.sum(axis=1) - 1.0) > PROBABILITY_SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise ValueError(f"stochastic policy's probabilities of row {row} sum to "
                         f"{probs[row].sum():.6g}, not 1")
    mask = sim.action_mask(state)
    if mask is not None and ((probs > 0) & ~mask)[alive].any():
        raise ValueError("stochastic policy gave probability to an action the domain masks out")
    return probs


def _rollout(sim: DomainSimulatorProtocol, policy: Policy, episodes: int, seed: int, batch: int,
             max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-episode returns and lengths of ``episodes`` rollouts on the streams of
    ``(seed, batch)``."""
    if isinstance(policy, str) and policy != BEHAVIOR:
        raise ValueError(f"unknown policy name {policy!r}; use {BEHAVIOR!r}, a callable or a "
                         "StochasticPolicy")
    dynamics, actions = rollout_streams(seed, batch)
    state = sim.reset(episodes, dynamics)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    for _ in range(max_steps):
        if not alive.any():
            break
        obs = sim.observe(state)
        if isinstance(policy, str):
            action = sample_actions(sim.behavior_probs(state), actions)
        elif isinstance(policy, StochasticPolicy):
            action = sample_actions(_stochastic_probs(sim, policy, obs, state, alive), actions)
        else:
            action = _deterministic_actions(sim, policy, obs, state, alive)
        out = sim.step(state, action, dynamics)
        returns += np.where(alive, out.reward, 0.0)
        lengths += alive
        alive &= ~out.done
    else:
        raise RuntimeError(f"episodes did not end within {max_steps} steps")
    return returns, lengths


def true_value(
    sim: DomainSimulatorProtocol,
    policy: Policy,
    *,
    episodes: int = 20_000,
    seed: int = 0,
    max_steps: int = 10_000,
) -> RolloutResult:
    """Expected return of ``policy`` (a deterministic policy, a :class:`StochasticPolicy` or
    ``"behavior"``) by ``episodes`` simulator rollouts.

    The same ``seed`` gives every policy the same episode starts and dynamics draws (see the
    module), so differences between policies valued with one seed are paired. Actions a
    policy returns, or gives positive probability to, that the domain masks out raise
    ``ValueError``: a policy that does that would be rejected by the shop's systems, so its
    value is undefined.
    """
    returns, lengths = _rollout(sim, policy, episodes, seed, 0, max_steps)
    return RolloutResult.of(returns, lengths)


@dataclass(frozen=True)
class PairedTruth:
    """True values of several policies rolled out on the same episodes (:func:`true_values`).

    Attributes:
        reference: The name of the policy the differences are taken to.
        values: Each policy's rollout result, all on the same ``episodes`` episodes.
        difference: Each policy's mean return minus the reference's.
        difference_stderr: Standard error of that difference, from the per-episode paired
            differences (0 for the reference itself).
        episodes: Rollouts per policy.
        target_relative_se: The precision asked for (None: a fixed number of rollouts).
        target_met: Whether every ``difference_stderr`` is at most ``target_relative_se`` times
            ``|values[reference].mean|`` (None without a target).
    """

    reference: str
    values: dict[str, RolloutResult]
    difference: dict[str, float]
    difference_stderr: dict[str, float]
    episodes: int
    target_relative_se: float | None = None
    target_met: bool | None = None

    def relative_stderr(self, name: str) -> float:
        """``difference_stderr[name]`` as a share of ``|values[reference].mean|``."""
        scale = abs(self.values[self.reference].mean)
        return self.difference_stderr[name] / scale if scale > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "episodes": self.episodes,
                "target_relative_se": self.target_relative_se, "target_met": self.target_met,
                "values": {k: v.as_dict() for k, v in self.values.items()},
                "difference": dict(self.difference),
                "difference_stderr": dict(self.difference_stderr)}


MIN_BATCH = 1_000
"""Fewest rollouts :func:`true_values` adds in one batch."""

MAX_BATCH = 50_000
"""Most rollouts per policy :func:`true_values` adds in one batch beyond its first
(``episodes``), which bounds its memory."""


def true_values(
    sim: DomainSimulatorProtocol,
    policies: Mapping[str, Policy],
    *,
    reference: str,
    episodes: int = 20_000,
    seed: int = 0,
    target_relative_se: float | None = None,
    max_episodes: int = 1_000_000,
    max_steps: int = 10_000,
) -> PairedTruth:
    """True values of ``policies`` on common random numbers, with paired standard errors.

    Every policy is rolled out on the same episodes (batch ``k`` on the streams of
    ``rollout_streams(seed, k)``; the first batch holds ``episodes`` rollouts and equals
    :func:`true_value` with ``seed``). Without ``target_relative_se`` that one batch is all.
    With it, batches are added until the standard error of every policy's paired
    per-episode difference to ``reference`` is at most ``target_relative_se * |reference
    value|``, or ``max_episodes`` rollouts per policy are reached (``target_met`` says
    which). Each added batch is sized from the standard errors so far, ``MIN_BATCH`` to
    ``MAX_BATCH`` rollouts.
    """
    if reference not in policies:
        raise ValueError(f"reference {reference!r} is not one of the policies "
                         f"({', '.join(policies)})")
    if episodes < 2:
        raise ValueError("episodes must be at least 2 (a standard error needs two)")
    if target_relative_se is not None and not target_relative_se > 0:
        raise ValueError(f"target_relative_se must be positive, got {target_relative_se!r}")
    if max_episodes < episodes:
        raise ValueError(f"max_episodes ({max_episodes}) is below episodes ({episodes})")
    names = list(policies)
    returns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    lengths: dict[str, list[np.ndarray]] = {name: [] for name in names}
    batch, size, total = 0, episodes, 0
    while True:
        for name in names:
            r, n = _rollout(sim, policies[name], size, seed, batch, max_steps)
            returns[name].append(r)
            lengths[name].append(n)
        total += size
        ret = {name: np.concatenate(returns[name]) for name in names}
        diffs = np.stack([ret[name] - ret[reference] for name in names])  # [policies, total]
        se = diffs.std(axis=1, ddof=1) / np.sqrt(total)
        met = None
        if target_relative_se is not None:
            goal = target_relative_se * abs(float(ret[reference].mean()))
            met = bool((se <= goal).all())
            if not met and total < max_episodes:
                worst = float(se.max())
                needed = (math.ceil(1.1 * total * (worst / goal) ** 2) if goal > 0
                          else max_episodes)
                size = int(min(max(needed - total, MIN_BATCH), MAX_BATCH,
                               max_episodes - total))
                batch += 1
                continue
        break
    values = {name: RolloutResult.of(ret[name], np.concatenate(lengths[name]))
              for name in names}
    return PairedTruth(
        reference=reference,
        values=values,
        difference={name: float(d.mean()) for name, d in zip(names, diffs, strict=True)},
        difference_stderr={name: float(s) for name, s in zip(names, se, strict=True)},
        episodes=total,
        target_relative_se=target_relative_se,
        target_met=met,
    )


class DomainEnv(gym.Env):
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
