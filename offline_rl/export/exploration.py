"""How a served policy explores, and the probability it gives every action.

A shop that serves a greedy policy logs propensity 1 for everything it does, and the next
night no importance-sampling or doubly-robust estimate of any other policy has support. An
export therefore carries a *serving head* beside the greedy one: the greedy action mixed
with exploration, returning the action it served, that action's probability (the propensity
the shop logs) and the whole action distribution.

Over the actions the mask allows (all of them without a mask, and all of them in a state
that allows none, where the served action is ``-1`` with propensity 1), with ``n_allowed``
allowed actions::

    epsilon:  p(a) = (1 - epsilon) * 1[a = greedy] + epsilon / n_allowed
    softmax:  p(a) = (1 - epsilon) * softmax(values / temperature)[a] + epsilon / n_allowed

``values`` are the export's second output (Q-values in reward units, or the cloned policy's
log-probabilities), so ``softmax`` explores more among actions the model rates close to the
best; its ``epsilon`` keeps a floor under every allowed action. The action is drawn by
inverse CDF from one uniform number per row, which the caller supplies: the same features
and the same uniform numbers give the same actions in TorchScript, ONNX and
:func:`serving_probabilities` (numpy), so a consumer can recompute every logged propensity
from the manifest and the features alone.

This module needs numpy and the standard library only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np

EPSILON = "epsilon"
SOFTMAX = "softmax"
KINDS = (EPSILON, SOFTMAX)

UNIFORM_MAX = float(np.float32(1.0) - np.float32(2.0 ** -24))
"""Largest uniform number the serving head uses (float32 just below 1): larger draws are
clipped to it, so the inverse CDF never runs past the last allowed action."""


@dataclass(frozen=True)
class Exploration:
    """The exploration a served policy adds to its greedy action.

    Attributes:
        kind: ``"epsilon"`` (epsilon-uniform over the allowed actions around the greedy one)
            or ``"softmax"`` (a softmax of the action values at ``temperature``, with an
            ``epsilon``-uniform floor).
        epsilon: Share of decisions drawn uniformly over the allowed actions, in [0, 1].
        temperature: Softmax temperature in the units of the export's values (``softmax``
            only; must be positive).
    """

    kind: str = EPSILON
    epsilon: float = 0.1
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"exploration kind: expected one of {', '.join(KINDS)}, got "
                             f"{self.kind!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"exploration epsilon: expected a share in [0, 1], got "
                             f"{self.epsilon!r}")
        if not self.temperature > 0.0:
            raise ValueError(f"exploration temperature: expected a positive number, got "
                             f"{self.temperature!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Exploration:
        return cls(kind=str(record.get("kind", EPSILON)),
                   epsilon=float(record.get("epsilon", 0.0)),
                   temperature=float(record.get("temperature", 1.0)))


def per_decision_ess(epsilon: float, n_actions: int, disagreement: float) -> float:
    """Kish effective sample size per logged decision of a deterministic target policy on
    logs served with epsilon-uniform exploration, as a share of the decisions.

    Where the target agrees with the served greedy action (a share ``1 - disagreement`` of
    the states) its importance weight is ``1 / (1 - epsilon + epsilon / n_actions)`` on the
    greedy action; where it disagrees, the logged action matches the target's with
    probability ``epsilon / n_actions`` and the weight is then ``n_actions / epsilon``. Every
    weight has mean 1, so the ESS share is ``1 / E[w^2]``.
    """
    if not 0.0 < epsilon <= 1.0:
        return 0.0 if disagreement > 0 else 1.0
    agree = 1.0 - epsilon + epsilon / n_actions
    second_moment = (1.0 - disagreement) / agree + disagreement * n_actions / epsilon
    return 1.0 / second_moment


EPSILON_GRID: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
"""The epsilons :func:`default_exploration` chooses from."""


def default_exploration(n_actions: int, min_ess: float, disagreement: float = 0.5
                        ) -> Exploration:
    """The least exploration that keeps the next night's off-policy evaluation supported:
    the smallest epsilon of ``EPSILON_GRID`` for which a deterministic candidate that
    disagrees with the served greedy action on ``disagreement`` of the decisions keeps a
    per-decision ESS share (:func:`per_decision_ess`) of at least ``min_ess``; the largest
    of the grid if none does."""
    for epsilon in EPSILON_GRID:
        if per_decision_ess(epsilon, n_actions, disagreement) >= min_ess:
            return Exploration(EPSILON, epsilon)
    return Exploration(EPSILON, EPSILON_GRID[-1])


def allowed_actions(features: np.ndarray, mask_index: list[int] | None, n_actions: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(allowed [n, n_actions], any_allowed [n])``: the mask features > 0, every action in a
    row that allows none (as the exported graphs do)."""
    n = features.shape[0]
    if not mask_index:
        return np.ones((n, n_actions), dtype=bool), np.ones(n, dtype=bool)
    allowed = features[:, mask_index] > 0
    any_allowed = cast(np.ndarray, allowed.any(axis=1))
    return allowed | ~any_allowed[:, None], any_allowed


def serving_probabilities(greedy: np.ndarray, values: np.ndarray, allowed: np.ndarray,
                          exploration: Exploration) -> np.ndarray:
    """The served policy's probability of every action ``[n, n_actions]`` (float64), from the
    greedy graph's outputs and the allowed actions (:func:`allowed_actions`)."""
    n_actions = values.shape[1]
    allowed_f = allowed.astype(np.float64)
    uniform = allowed_f / allowed_f.sum(axis=1, keepdims=True)
    if exploration.kind == SOFTMAX:
        scores = np.where(allowed, values.astype(np.float64) / exploration.temperature, -np.inf)
        scores = scores - scores.max(axis=1, keepdims=True)
        base = np.exp(scores)
        base /= base.sum(axis=1, keepdims=True)
    else:
        base = (np.arange(n_actions)[None, :] == np.maximum(greedy, 0)[:, None]).astype(
            np.float64)
    return (1.0 - exploration.epsilon) * base + exploration.epsilon * uniform


def draw(probs: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of one action per row (the serving graphs' rule): the number of
    actions whose normalised cumulative probability is at most the row's uniform number,
    which always lands on an action of positive probability."""
    cdf = np.cumsum(probs, axis=1)
    cdf = cdf / cdf[:, -1:]
    u = np.minimum(np.asarray(uniform, dtype=np.float64), UNIFORM_MAX)[:, None]
    return np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1).astype(np.int64)
