"""Diagnostics of how trustworthy importance-weighted OPE estimates are.

Importance-sampling estimators fail quietly: a handful of episodes with huge weights can
dominate the estimate while the bootstrap interval still looks narrow. These diagnostics
summarise the weights and the overlap between target and behaviour policies so a promotion
gate can refuse estimates that rest on too little data.

References:
    Kish, L. (1965). *Survey Sampling*. Wiley (effective sample size).
    Owen, A. B. (2013). *Monte Carlo theory, methods and examples*, Ch. 9 (ESS of
    importance sampling).
    Voloshin, C., Le, H. M., Jiang, N. and Yue, Y. (2021). Empirical study of off-policy
    policy evaluation for reinforcement learning. *NeurIPS Datasets and Benchmarks*.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from offline_rl.ope.estimators import Estimate, LoggedData


@dataclass(frozen=True)
class Diagnostics:
    """Weight and overlap diagnostics of one target policy on logged data.

    Attributes:
        ess: Kish effective sample size of the final trajectory weights
            ``w_i = w_{i,T_i}``: ``(sum_i w_i)^2 / sum_i w_i^2`` (``n`` for equal weights,
            ``1`` when one episode holds all weight, ``0`` without any support, NaN when a
            weight is not finite).
        ess_fraction: ``ess / n_episodes``.
        per_decision_ess_fraction: Kish ESS of the single-decision ratios
            ``rho_t = pi(a_t|s_t) / b(a_t|s_t)`` over all rows, divided by the row count.
        max_weight_share: Largest final trajectory weight over their sum; NaN (undefined) if
            the sum is 0 (no logged episode followed the target to its end) or a weight is
            not finite.
        rare_action_rate: Share of logged states where the target policy prefers an action
            (probability >= 0.5, or its argmax) that the behaviour policy takes with probability
            below ``rare_threshold``; see :func:`compute_diagnostics` for the logged-rows-only
            estimate.
        action_match_rate: Share of logged decisions where the target's greedy action equals
            the logged action.
    """

    ess: float
    ess_fraction: float
    per_decision_ess_fraction: float
    max_weight_share: float
    rare_action_rate: float
    action_match_rate: float

    def as_dict(self) -> dict[str, float]:
        """The fields as plain floats (``Diagnostics(**d.as_dict())`` round-trips)."""
        return {k: float(v) for k, v in asdict(self).items()}


def kish_ess(weights: np.ndarray) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` of nonnegative weights (0 if all 0;
    NaN, undefined, if a weight is not finite, e.g. a trajectory weight that overflowed)."""
    w = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(w).all():
        return math.nan
    with np.errstate(over="ignore"):
        sq = float(np.dot(w, w))
    if not math.isfinite(sq):  # finite weights whose squares overflow: scale them first
        w = w / w.max()
        sq = float(np.dot(w, w))
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


def _prob_matrix(name: str, probs: np.ndarray, rows: int) -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise ValueError(f"{name}: expected shape ({rows}, n_actions), got {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1 + 1e-9)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{name}: value {arr[row, col]!r} at row {row}, action {col} is not a "
                         "probability")
    return arr


def compute_diagnostics(
    data: LoggedData,
    *,
    target_probs_all: np.ndarray | None = None,
    behavior_probs_all: np.ndarray | None = None,
    logged_action: np.ndarray | None = None,
    rare_threshold: float = 0.02,
) -> Diagnostics:
    """Computes :class:`Diagnostics` for ``data``.

    The weight diagnostics (``ess``, ``ess_fraction``, ``per_decision_ess_fraction``,
    ``max_weight_share``) use only ``data``. The overlap diagnostics use the full probability
    matrices when given, else fall back to the logged rows:

    * ``rare_action_rate``: with both ``target_probs_all`` and ``behavior_probs_all``
      (``[rows, n_actions]``), the share of rows ``t`` for which some action ``a`` with
      ``pi(a|s_t) >= 0.5`` or ``a = argmax pi(.|s_t)`` has ``b(a|s_t) < rare_threshold``.
      Otherwise an importance-sampling estimate from the logged rows only:
      ``(1/rows) sum_t 1[pi(a_t|s_t) >= 0.5, b(a_t|s_t) < rare_threshold] / b(a_t|s_t)``
      (clipped to 1). A state whose target-preferred action ``a*`` is rare shows ``a*`` in the
      log with probability ``b(a*|s)``, so dividing by it makes the estimate unbiased for the
      share of states whose ``pi >= 0.5`` action is rare; it is noisy (weights above
      ``1/rare_threshold``) and misses argmax actions with ``pi < 0.5``.
    * ``action_match_rate``: with ``target_probs_all`` and ``logged_action``,
      ``mean_t 1[argmax_a pi(a|s_t) = a_t]``. Otherwise the share of rows with
      ``pi(a_t|s_t) > 0.5`` (the logged action is then the unique argmax): exact for a
      deterministic target, a lower bound for a stochastic one.

    Args:
        data: Logged decisions for the target policy.
        target_probs_all: Optional ``[rows, n_actions]`` target probabilities at each logged
            state, rows in ``data``'s order.
        behavior_probs_all: Optional ``[rows, n_actions]`` behaviour probabilities.
        logged_action: Optional logged action index per row. When given with a probability
            matrix, the matrix's entry at the logged action must equal ``data``'s
            ``target_prob`` / ``behavior_prob`` (within ``1e-6``), which catches misaligned rows.
        rare_threshold: Behaviour probability below which an action counts as rare.

    Returns:
        The diagnostics.

    Raises:
        ValueError: On shape mismatch, invalid probabilities or inconsistent inputs.
    """
    if not (0.0 < rare_threshold <= 1.0):
        raise ValueError(f"rare_threshold: expected a number in (0, 1], got {rare_threshold!r}")
    rows = data.n_rows
    weights = data.trajectory_weights()
    ess = kish_ess(weights)
    top = float(weights.max())
    total = float((weights / top).sum()) if 0 < top < math.inf else math.nan  # in units of top
    max_share = 1.0 / total if math.isfinite(total) else math.nan
    per_decision = kish_ess(data.ratio) / rows

    tp = None if target_probs_all is None else _prob_matrix("target_probs_all",
                                                            target_probs_all, rows)
    bp = None if behavior_probs_all is None else _prob_matrix("behavior_probs_all",
                                                              behavior_probs_all, rows)
    if tp is not None and bp is not None and tp.shape != bp.shape:
        raise ValueError(f"behavior_probs_all: shape {bp.shape} differs from target_probs_all's "
                         f"{tp.shape}")
    action = None
    if logged_action is not None:
        action = np.asarray(logged_action)
        if action.ndim != 1 or action.shape[0] != rows or action.dtype.kind not in "iu":
            raise ValueError(f"logged_action: expected {rows} integer actions, got "
                             f"shape {action.shape} dtype {action.dtype}")
        for name, matrix, logged in (("target_probs_all", tp, data.target_prob),
                                     ("behavior_probs_all", bp, data.behavior_prob)):
            if matrix is None:
                continue
            if ((action < 0) | (action >= matrix.shape[1])).any():
                raise ValueError(f"logged_action: action outside 0..{matrix.shape[1] - 1}")
            mismatch = np.abs(matrix[np.arange(rows), action] - logged) > 1e-6
            if mismatch.any():
                row = int(np.flatnonzero(mismatch)[0])
                raise ValueError(f"{name}: entry at the logged action of row {row} "
                                 f"({matrix[row, action[row]]:g}) differs from LoggedData's "
                                 f"{logged[row]:g}")

    if tp is not None and bp is not None:
        greedy = np.zeros(tp.shape, dtype=bool)
        greedy[np.arange(rows), tp.argmax(axis=1)] = True
        preferred = greedy | (tp >= 0.5)
        rare = float((preferred & (bp < rare_threshold)).any(axis=1).mean())
    else:
        hit = (data.target_prob >= 0.5) & (data.behavior_prob < rare_threshold)
        rare = min(1.0, float(np.where(hit, 1.0 / data.behavior_prob, 0.0).mean()))

    if tp is not None and action is not None:
        match = float((tp.argmax(axis=1) == action).mean())
    else:
        match = float((data.target_prob > 0.5).mean())

    return Diagnostics(
        ess=ess,
        ess_fraction=ess / data.n_episodes,
        per_decision_ess_fraction=per_decision,
        max_weight_share=max_share,
        rare_action_rate=rare,
        action_match_rate=match,
    )


def estimator_disagreement(estimates: dict[str, Estimate]) -> float:
    """Spread of point estimates relative to the typical interval width.

    ``(max_k v_k - min_k v_k) / mean_k (high_k - low_k)`` over estimators with a finite point
    estimate (interval widths: those that are finite). Around or below 1 the estimators agree
    within their own uncertainty; well above 1 they contradict each other, typically a
    misspecified model (DM/DR) or weights that are too extreme for IS.

    Args:
        estimates: ``{name: Estimate}`` as returned by :func:`offline_rl.ope.estimators.estimate`.

    Returns:
        The ratio; ``0.0`` with fewer than two finite estimates or no spread, ``inf`` for a
        positive spread without any positive finite width, NaN for an empty input.
    """
    values = np.array([e.value for e in estimates.values()], dtype=np.float64)
    if values.size == 0:
        return math.nan
    values = values[np.isfinite(values)]
    if values.size < 2:
        return 0.0
    spread = float(values.max() - values.min())
    if spread == 0.0:
        return 0.0
    widths = np.array([e.high - e.low for e in estimates.values()], dtype=np.float64)
    widths = widths[np.isfinite(widths)]
    width = float(widths.mean()) if widths.size else 0.0
    return spread / width if width > 0 else math.inf
