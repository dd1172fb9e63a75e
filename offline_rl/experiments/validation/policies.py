"""The constructed candidates of a validation run: greedy, perturbed, blended, early/late,
value-greedy and rare-action policies over a simulator's observations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from offline_rl.experiments.validation.scenarios import NEAR_BAR_SEARCH

# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


def allowed_actions(obs: np.ndarray, mask_indices: Sequence[int] | None) -> np.ndarray | None:
    """``[n, n_actions]`` booleans from the observation's mask features (None: no mask)."""
    if not mask_indices:
        return None
    return np.asarray(obs)[:, list(mask_indices)] > 0.5


class GreedyPolicy:
    """A trained candidate's greedy policy (``train_candidate`` makes it honour the mask).

    ``action_values`` gives the algorithm's value of every action (Q-learners only:
    ``has_values`` is False for behaviour cloning).
    """

    def __init__(self, algo: Any, n_actions: int, mask_indices: Sequence[int] | None) -> None:
        self.algo = algo
        self.n_actions = n_actions
        self.mask_indices = list(mask_indices) if mask_indices else None
        self.has_values = type(algo).__name__ not in ("DiscreteBC", "BC")

    def action_values(self, obs: np.ndarray) -> np.ndarray:
        """``[n, n_actions]`` action values of the algorithm."""
        if not self.has_values:
            raise ValueError(f"{type(self.algo).__name__} has no action values")
        n = obs.shape[0]
        return np.stack([np.asarray(self.algo.predict_value(obs, np.full(n, a, dtype=np.int64)),
                                    dtype=np.float64) for a in range(self.n_actions)], axis=1)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.algo.predict(np.asarray(obs, dtype=np.float32))).astype(np.int64)


class PerturbedPolicy:
    """``base``'s greedy action, except its least-valued allowed action in ``share`` of states.

    The states are chosen by a hash of the observation (a fixed random projection's
    fractional part), so the policy is deterministic and the same state always gets the same
    action.
    """

    def __init__(self, base: GreedyPolicy, share: float, seed: int) -> None:
        if not base.has_values:
            raise ValueError("the perturbed policy needs a base with action values")
        self.base = base
        self.share = float(share)
        self._hash = StateHash(seed)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        values = self.base.action_values(obs)
        allowed = allowed_actions(obs, self.base.mask_indices)
        if allowed is None:
            allowed = np.ones(values.shape, dtype=bool)
        best = np.where(allowed, values, -np.inf).argmax(axis=1)
        worst = np.where(allowed, values, np.inf).argmin(axis=1)
        return np.where(self._hash(obs) < self.share, worst, best).astype(np.int64)


def state_hash(obs: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per observation: the fractional part of a scaled random projection,
    so the same state always gets the same number and shares of states can be chosen."""
    h = np.abs(np.asarray(obs, dtype=np.float64) @ projection) * 7919.0
    return h - np.floor(h)


class StateHash:
    """:func:`state_hash` with a projection drawn from ``seed`` on first use (its length is
    the observations' number of features)."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._projection: np.ndarray | None = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self._projection is None:
            n_features: int = obs.shape[1]
            self._projection = np.random.default_rng(self._seed).normal(size=n_features)
        return state_hash(obs, self._projection)


class BlendPolicy:
    """``first``'s action in ``share`` of states (chosen by :func:`state_hash`), ``second``'s
    elsewhere: a deterministic policy whose value moves from ``second``'s (share 0) towards
    ``first``'s (share 1)."""

    def __init__(self, first: Any, second: Any, share: float, seed: int) -> None:
        self.first, self.second, self.share = first, second, float(share)
        self._hash = StateHash(seed)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        pick = self._hash(obs) < self.share
        return np.where(pick, self.first.predict(obs), self.second.predict(obs)).astype(np.int64)


def near_value(value_of: Callable[[Any], float], make: Callable[[float], Any], target: float,
               band: float, steps: int = NEAR_BAR_SEARCH) -> tuple[Any, float] | None:
    """A policy ``make(share)`` whose true value (``value_of``) is within ``band`` of
    ``target``, by bisection on ``share`` in [0, 1] (``make(1)`` truly above ``target``,
    ``make(0)`` below); None when the bisection ends farther away (the value need not be
    monotone in the share)."""
    lo, hi = 0.0, 1.0
    found: tuple[Any, float] | None = None
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        policy = make(mid)
        value = value_of(policy)
        if found is None or abs(value - target) < abs(found[1] - target):
            found = (policy, value)
        if value < target:
            lo = mid
        else:
            hi = mid
    return found if found is not None and abs(found[1] - target) <= band else None


def near_bar_blend(value_of: Callable[[Any], float], best: Any, low: Any, target: float,
                   band: float, seed: int, steps: int = NEAR_BAR_SEARCH
                   ) -> tuple[BlendPolicy, float] | None:
    """:func:`near_value` over blends of ``best`` (truly above ``target``) and ``low`` (truly
    below): ``best``'s action in a share of states (:class:`BlendPolicy`)."""
    return near_value(value_of, lambda share: BlendPolicy(best, low, share, seed), target,
                      band, steps)


class EarlyLatePolicy:
    """``early``'s action early in the episode, ``late``'s from ``cut`` on: a decision is early
    when its progress feature (column ``progress_index``: 0 at an episode's start, towards 1
    at its end) plus ``step`` times the state's hash (:func:`state_hash`, in [0, 1)) is below
    ``cut``. With ``step`` the feature's step (a page, a visit, a day), the states at the
    step where the switch happens are split by their hash, so the policy's value moves
    smoothly with ``cut`` instead of in jumps of a whole step.

    Good early and bad late is where doubly robust leans on its model: a policy that leaves
    the logged actions has its later steps' cumulative importance weights near zero (or
    clipped), so their value comes from FQE's extrapolation.
    """

    def __init__(self, early: Any, late: Any, cut: float, progress_index: int, step: float,
                 seed: int) -> None:
        self.early, self.late, self.cut = early, late, float(cut)
        self.progress_index, self.step = int(progress_index), float(step)
        self._hash = StateHash(seed)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        position = obs[:, self.progress_index] + self.step * self._hash(obs)
        early = position < self.cut
        return np.where(early, self.early.predict(obs), self.late.predict(obs)).astype(np.int64)


def progress_step(values: np.ndarray) -> float:
    """The smallest gap between the distinct values of a progress feature (0 with fewer than
    two): its step when it counts pages, visits or days."""
    distinct = np.unique(np.asarray(values, dtype=np.float64))
    return float(np.diff(distinct).min()) if distinct.size > 1 else 0.0


def masked(values: np.ndarray, obs: np.ndarray, mask_indices: Sequence[int] | None
           ) -> np.ndarray:
    """``values`` with ``-inf`` on the actions the mask forbids in each state (unchanged in a
    state that allows none, or without a mask)."""
    allowed = allowed_actions(obs, mask_indices)
    if allowed is None:
        return values
    return np.where(allowed | ~allowed.any(axis=1, keepdims=True), values, -np.inf)


class ValueGreedyPolicy:
    """The allowed action of highest value under ``q`` (observations -> ``[n, n_actions]``
    values). With ``q`` the evaluation's own fitted Q-function on the held-out episodes, it is
    a candidate tuned to please the evaluator: one step of policy improvement on FQE, which
    picks exactly the actions whose values FQE over-estimates."""

    def __init__(self, q: Callable[[np.ndarray], np.ndarray],
                 mask_indices: Sequence[int] | None) -> None:
        self.q = q
        self.mask_indices = list(mask_indices) if mask_indices else None

    def predict(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        return masked(self.q(obs), obs, self.mask_indices).argmax(axis=1).astype(np.int64)


def allowed_softmax(log_probs: np.ndarray, obs: np.ndarray, mask_indices: Sequence[int] | None
                    ) -> np.ndarray:
    """``[n, n_actions]`` a model's (log-)probabilities renormalised over the actions the mask
    allows in each state (over every action in a state that allows none)."""
    log_probs = masked(np.asarray(log_probs, dtype=np.float64), obs, mask_indices)
    probs = np.exp(log_probs - log_probs.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


class _OnLogsPolicy:
    """A stochastic policy built from a trained Q-learner's ``values`` and a behaviour model's
    estimate of the logging policy (``behavior_log_probs``), with a share or threshold
    ``level`` in (0, 1) (named ``level_name`` in errors); subclasses give :meth:`probs`."""

    def __init__(self, values: Callable[[np.ndarray], np.ndarray],
                 behavior_log_probs: Callable[[np.ndarray], np.ndarray], level: float,
                 mask_indices: Sequence[int] | None, level_name: str) -> None:
        if not 0.0 < level < 1.0:
            raise ValueError(f"{level_name}: expected a probability in (0, 1), got {level!r}")
        self.values, self.behavior_log_probs = values, behavior_log_probs
        self.mask_indices = list(mask_indices) if mask_indices else None

    def behavior_probs(self, obs: np.ndarray) -> np.ndarray:
        """``[n, n_actions]`` the behaviour model's probabilities over the allowed actions."""
        return allowed_softmax(self.behavior_log_probs(obs), obs, self.mask_indices)

    def probs(self, obs: np.ndarray) -> np.ndarray:
        """``[n, n_actions]`` the policy's probabilities."""
        raise NotImplementedError

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """The most probable action."""
        return self.probs(obs).argmax(axis=1).astype(np.int64)


class MixturePolicy(_OnLogsPolicy):
    """A candidate mixed with the logging policy: in every state, with probability ``share``
    an action drawn from a behaviour model's estimate of the logging policy
    (``behavior_log_probs``, renormalised over the allowed actions), otherwise the action of
    highest ``values`` (a trained Q-learner's) among the allowed ones. It stays closer to the
    logs than the greedy policy (its importance weights are bounded by ``1 / share`` on the
    logged actions the estimate covers) and earns part of its gain. A stochastic policy,
    like :class:`SpibbPolicy`.
    """

    def __init__(self, values: Callable[[np.ndarray], np.ndarray],
                 behavior_log_probs: Callable[[np.ndarray], np.ndarray], share: float,
                 mask_indices: Sequence[int] | None) -> None:
        super().__init__(values, behavior_log_probs, share, mask_indices, "share")
        self.share = float(share)
        self.greedy = ValueGreedyPolicy(values, mask_indices)

    def probs(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        best = self.greedy.predict(obs)
        probs = self.share * self.behavior_probs(obs)
        probs[np.arange(obs.shape[0]), best] += 1.0 - self.share
        return probs


class SpibbPolicy(_OnLogsPolicy):
    """A policy that stays where the logs are, in the manner of Pi_b-SPIBB (Laroche,
    Trichelair and Tachet des Combes 2019): in each state, the actions the logging policy
    takes with probability below ``threshold`` (by a behaviour model's estimate,
    ``behavior_log_probs``: the logs hold few samples of them) keep that probability; the
    rest of the probability goes to the action of highest ``values`` (a trained Q-learner's)
    among the others. A state where every allowed action is that rare keeps the estimate
    whole. Actions the mask forbids get none.

    A stochastic policy: :meth:`probs` gives its distribution (valued exactly by the
    evaluation, sampled in the truth rollouts); :meth:`fallback` the probability each state
    leaves with the logging policy's estimate.
    """

    def __init__(self, values: Callable[[np.ndarray], np.ndarray],
                 behavior_log_probs: Callable[[np.ndarray], np.ndarray], threshold: float,
                 mask_indices: Sequence[int] | None) -> None:
        super().__init__(values, behavior_log_probs, threshold, mask_indices, "threshold")
        self.threshold = float(threshold)

    def _parts(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = np.asarray(obs, dtype=np.float32)
        pb = self.behavior_probs(obs)
        kept: np.ndarray = pb < self.threshold  # too rare in the logs: logging probability
        free: np.ndarray = (pb > 0) & ~kept
        has_free = np.asarray(free.any(axis=1), dtype=bool)
        best = np.where(free, self.values(obs), -np.inf).argmax(axis=1)
        probs = np.where(kept | ~has_free[:, None], pb, 0.0)
        rows = np.flatnonzero(has_free)
        probs[rows, best[rows]] += (pb * free).sum(axis=1)[rows]
        fallback = np.where(has_free, (pb * kept).sum(axis=1), 1.0)
        return probs, fallback

    def probs(self, obs: np.ndarray) -> np.ndarray:
        """``[n, n_actions]`` the policy's probabilities."""
        return self._parts(obs)[0]

    def fallback(self, obs: np.ndarray) -> np.ndarray:
        """``[n]`` the probability each state leaves with the logging policy's estimate (1 in
        a state whose allowed actions are all rare)."""
        return self._parts(obs)[1]


class RarePolicy:
    """Always the allowed action that the training logs contain least often."""

    def __init__(self, logged_actions: np.ndarray, n_actions: int,
                 mask_indices: Sequence[int] | None) -> None:
        counts = np.bincount(logged_actions, minlength=n_actions)
        self.order = np.argsort(counts, kind="stable")
        self.shares = counts / max(counts.sum(), 1)
        self.mask_indices = list(mask_indices) if mask_indices else None

    def predict(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        allowed = allowed_actions(obs, self.mask_indices)
        if allowed is None:
            return np.full(obs.shape[0], self.order[0], dtype=np.int64)
        first = allowed[:, self.order].argmax(axis=1)
        return self.order[first].astype(np.int64)
