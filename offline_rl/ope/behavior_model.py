"""Estimating the logging (behaviour) policy when the logs lack usable propensities.

Importance weights need ``b(a_t|s_t)``. When the logs do not record it, it is estimated:

* with state features: multinomial logistic regression ``b(a|s) = softmax(W x(s) + c)_a`` on
  standardised features, fitted by full-batch L-BFGS on the mean cross-entropy plus a small
  L2 penalty on ``W`` (convex; zero initialisation, so the fit is deterministic);
* without features: the empirical action frequencies at each step index,
  ``b(a|t) = #(step = t, action = a) / #(step = t)``.

Estimated propensities make every importance-weighted estimate depend on this model being
right (Hanna, Niekum and Stone 2019 show the estimated-propensity IS can even have lower
variance when the model is right); the bootstrap intervals do not include the model's own
estimation error. Callers must report that the propensities were estimated.

References:
    Hanna, J., Niekum, S. and Stone, P. (2019). Importance sampling policy evaluation with an
    estimated behavior policy. *ICML*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MIN_PROB = 1e-12
"""Floor on estimated probabilities, only to keep them strictly positive after rounding."""


@dataclass(frozen=True)
class BehaviorEstimate:
    """Estimated behaviour probabilities of every action at every logged state.

    Attributes:
        probs: ``[rows, n_actions]`` estimated ``b(a|s_t)``; rows sum to 1.
        method: ``"logistic_regression"`` or ``"empirical_per_step"``.
        description: One line for reports and warnings.
        train_accuracy: Share of rows whose logged action is the model's most probable one.
        mean_log_likelihood: Mean ``log b(a_t|s_t)`` of the logged actions.
    """

    probs: np.ndarray
    method: str
    description: str
    train_accuracy: float
    mean_log_likelihood: float

    def logged(self, action: np.ndarray) -> np.ndarray:
        """``b(a_t|s_t)`` of the logged actions."""
        return self.probs[np.arange(self.probs.shape[0]), action]


def _summary(probs: np.ndarray, action: np.ndarray, method: str,
             description: str) -> BehaviorEstimate:
    rows = np.arange(action.shape[0])
    return BehaviorEstimate(
        probs=probs,
        method=method,
        description=description,
        train_accuracy=float((probs.argmax(axis=1) == action).mean()),
        mean_log_likelihood=float(np.log(probs[rows, action]).mean()),
    )


def empirical_per_step(action: np.ndarray, step: np.ndarray, n_actions: int) -> BehaviorEstimate:
    """Action frequencies at each step index (the logged action always gets a positive share)."""
    action = np.asarray(action, dtype=np.int64)
    step = np.asarray(step, dtype=np.int64)
    steps, inverse = np.unique(step, return_inverse=True)
    counts = np.zeros((steps.shape[0], n_actions))
    np.add.at(counts, (inverse, action), 1.0)
    table = counts / counts.sum(axis=1, keepdims=True)
    probs = np.maximum(table[inverse], 0.0)
    return _summary(probs, action, "empirical_per_step",
                    "empirical action frequencies per step (no f_ features to condition on)")


def logistic_regression(
    features: np.ndarray,
    action: np.ndarray,
    n_actions: int,
    *,
    l2: float = 1e-4,
    max_iter: int = 200,
) -> BehaviorEstimate:
    """Multinomial logistic regression of the logged action on the features.

    Args:
        features: ``[rows, d]`` state features.
        action: Logged action per row, in ``0..n_actions-1``.
        n_actions: Size of the action space (actions never logged get small probabilities).
        l2: L2 penalty on the weights (not the intercepts), per row.
        max_iter: L-BFGS iterations.

    Returns:
        The fitted probabilities at every logged state.
    """
    x = np.asarray(features, dtype=np.float64)
    a = np.asarray(action, dtype=np.int64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    xt = torch.from_numpy((x - mean) / std)
    at = torch.from_numpy(a)
    weight = torch.zeros((x.shape[1], n_actions), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_actions, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter,
                                  tolerance_grad=1e-10, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ weight + bias, at) \
            + l2 * (weight * weight).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        probs = torch.softmax(xt @ weight + bias, dim=1).numpy()
    probs = np.maximum(probs, MIN_PROB)
    probs /= probs.sum(axis=1, keepdims=True)
    return _summary(probs, a, "logistic_regression",
                    f"multinomial logistic regression on {x.shape[1]} f_ feature(s)")


def estimate_behavior(
    action: np.ndarray,
    step: np.ndarray,
    n_actions: int,
    features: np.ndarray | None = None,
) -> BehaviorEstimate:
    """Logistic regression on ``features`` when given (and non-empty), else per-step frequencies."""
    if features is not None and features.shape[1] > 0:
        from offline_rl.ope.fqe_torch import single_thread

        with single_thread():
            return logistic_regression(features, action, n_actions)
    return empirical_per_step(action, step, n_actions)
