"""Off-policy evaluation (OPE) estimators for episodic logged data, in pure numpy.

Notation: episode ``i = 1..n`` has decisions ``t = 0..T_i`` with reward ``r_{i,t}``, logged
action ``a_{i,t}`` drawn by the behaviour policy ``b``; the target policy is ``pi``. The
per-decision ratio is ``rho_{i,t} = pi(a_{i,t}|s_{i,t}) / b(a_{i,t}|s_{i,t})`` and the
cumulative importance weight ``w_{i,t} = prod_{k<=t} rho_{i,k}`` (``w_{i,-1} = 1``). The
discounted return is ``G_i = sum_t gamma^t r_{i,t}``. The estimated quantity is the target
policy's expected discounted return per episode ``V(pi) = E_pi[G]``.

Estimators (``ESTIMATORS``):

* ``ipw``: trajectory-wise importance sampling, ``(1/n) sum_i w_{i,T_i} G_i``.
* ``snipw``: self-normalised (weighted) IS, ``sum_i w_{i,T_i} G_i / sum_i w_{i,T_i}``.
* ``pdis``: per-decision IS, ``sum_t gamma^t (1/n) sum_i w_{i,t} r_{i,t}``.
* ``snpdis``: per-decision weighted IS, ``sum_t gamma^t sum_i w_{i,t} r_{i,t} / sum_i w_{i,t}``.
* ``dm``: direct method, ``(1/n) sum_i V_hat(s_{i,0})`` from a model (e.g. FQE).
* ``dr``: sequential doubly robust,
  ``(1/n) sum_i sum_t gamma^t [w_{i,t} (r_{i,t} - Q_hat(s_{i,t}, a_{i,t}))
  + w_{i,t-1} V_hat(s_{i,t})]``.
* ``sndr``: self-normalised (weighted) doubly robust: ``dr`` with each ``w_{i,t}`` replaced by
  ``w_{i,t} / ((1/n) sum_j w_{j,t})``.

On one-step (contextual-bandit) data ``pdis == ipw``, ``snpdis == snipw`` and ``dm``, ``dr``,
``sndr`` are the bandit DM, DR and self-normalised DR of Open Bandit Pipeline.

**End-of-episode convention.** Episodes have different lengths. Shorter episodes are padded
to the longest horizon ``H`` with an absorbing, zero-reward state in which target and
behaviour agree (ratio 1), so after its end an episode keeps its final weight
``w_{i,t} = w_{i,T_i}`` for ``t > T_i`` and has ``r_{i,t} = 0`` and ``Q_hat = V_hat = 0``.
The per-decision normalisers of ``snpdis`` and ``sndr`` therefore sum the weights of *all*
``n`` episodes at every step, ended ones included. This is the weighted per-decision
estimator of Precup et al. (2000) applied to the padded, fixed-horizon process, which keeps
``E_b[w_{i,t}] = 1`` at every step (so the normaliser estimates ``n``) and gives: the
on-policy mean return when ``pi == b`` (all weights 1, every normaliser ``n``), exactly
``snipw`` on one-step data, and no inflation of late rewards by normalising only over the
(few, long) episodes still running. Normalising over running episodes only would instead
estimate ``sum_t gamma^t E[r_t | T >= t]``, which is biased whenever length is random.

**Support.** A step ``t`` where every weight is zero makes the self-normalised ratios
``0 / 0``: ``snipw`` and ``snpdis`` are then NaN (the data carry no information about the
target policy's later rewards), while ``sndr`` uses ``0 / 0 := 0`` for those terms, so the
model's ``V_hat`` accounts for the unsupported future (it reduces to ``dm`` with no support).

**Weight clipping.** ``max_weight`` replaces every cumulative weight by
``min(w_{i,t}, max_weight)`` (after the product, for all estimators that use weights). This
bounds variance at the price of a bias: clipped IS estimators under-weight the trajectories
the target policy favours most (towards zero for nonnegative rewards) and clipped DR leans
towards the model. Use it as a variance/bias trade-off knob, not as a default.

**Confidence intervals.** Percentile bootstrap over whole episodes. Every estimator is a
function of column sums of a per-episode statistics matrix, so all ``B`` resamples are
evaluated with a ``[B, n]`` multinomial count matrix times that matrix (see
:mod:`offline_rl.ope.bootstrap`); all estimators share the same resamples.

References:
    Horvitz, D. G. and Thompson, D. J. (1952). A generalization of sampling without
    replacement from a finite universe. *JASA* 47(260).
    Precup, D., Sutton, R. S. and Singh, S. (2000). Eligibility traces for off-policy policy
    evaluation. *ICML*.
    Dudik, M., Langford, J. and Li, L. (2011). Doubly robust policy evaluation and learning.
    *ICML*.
    Jiang, N. and Li, L. (2016). Doubly robust off-policy value evaluation for reinforcement
    learning. *ICML*.
    Thomas, P. S. and Brunskill, E. (2016). Data-efficient off-policy policy evaluation for
    reinforcement learning. *ICML*.
    Thomas, P. S., Theocharous, G. and Ghavamzadeh, M. (2015). High confidence off-policy
    evaluation. *AAAI*.
    Maurer, A. and Pontil, M. (2009). Empirical Bernstein bounds and sample variance
    penalization. *COLT*.
    Saito, Y., Aihara, S., Matsutani, M. and Narita, Y. (2021). Open Bandit Dataset and
    Pipeline. *NeurIPS Datasets and Benchmarks*.
    Kiyohara, H. et al. (2023). SCOPE-RL: A Python library for offline reinforcement learning
    and off-policy evaluation. arXiv:2311.18206.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from numbers import Real
from typing import Any, Literal

import numpy as np

from offline_rl.ope.bootstrap import bootstrap_sums, percentile_interval

ESTIMATORS: tuple[str, ...] = ("ipw", "snipw", "pdis", "snpdis", "dm", "dr", "sndr")
"""Names accepted by :func:`estimate`, in their default report order."""

_MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "dm": ("v_target",),
    "dr": ("q_logged", "v_target"),
    "sndr": ("q_logged", "v_target"),
}
"""Model estimates an estimator needs; it is skipped when one of them is missing."""

_PROB_TOL = 1e-9
"""Slack above 1 tolerated in probabilities (floating-point rounding of softmax outputs)."""


# --------------------------------------------------------------------------------------------
# Input validation helpers
# --------------------------------------------------------------------------------------------


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _float_array(name: str, values: Any, length: int | None = None) -> np.ndarray:
    """1-D finite float64 copy of ``values``; ``ValueError`` naming ``name`` otherwise."""
    try:
        arr = np.array(values, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot convert to float: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name}: length {arr.shape[0]} does not match episode's length {length}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = _first_bad(bad)
        raise ValueError(f"{name}: non-finite value {arr[row]!r} at row {row}")
    return arr


def _int_array(name: str, values: Any, length: int | None = None) -> np.ndarray:
    """1-D int64 copy of integer (or integer-valued float) ``values``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name}: length {arr.shape[0]} does not match episode's length {length}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=True)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            row = _first_bad(bad)
            raise ValueError(f"{name}: non-integer value {arr[row]!r} at row {row}")
        return arr.astype(np.int64)
    raise ValueError(
        f"{name}: expected integers, got dtype {arr.dtype}"
        + (" (use LoggedData.from_arrays for arbitrary episode ids)" if name == "episode" else "")
    )


def _check_range(name: str, arr: np.ndarray, low: float, high: float, low_open: bool) -> None:
    bad = (arr <= low if low_open else arr < low) | (arr > high + _PROB_TOL)
    if bad.any():
        row = _first_bad(bad)
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name}: value {arr[row]!r} at row {row} is outside {interval}")


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


# --------------------------------------------------------------------------------------------
# Data containers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LoggedData:
    """Logged decisions for one target policy, sorted by (episode, step).

    One row per logged decision. Arrays are copied to read-only ``int64``/``float64`` arrays at
    construction and validated; every failure raises ``ValueError`` whose message starts with
    the field name and gives the first offending row.

    Attributes:
        episode: Integer episode id per row, non-decreasing (rows of an episode contiguous).
            Ids need not be ``0..n-1``; :meth:`from_arrays` accepts arbitrary ids and sorts.
        step: 0-based decision index within the episode; ``0, 1, ..., T_i`` in row order.
        reward: Reward observed after the decision (finite).
        behavior_prob: ``b(a_t|s_t)`` of the logged action, in ``(0, 1]``.
        target_prob: ``pi(a_t|s_t)`` of the logged action, in ``[0, 1]`` (``1.0``/``0.0`` for a
            deterministic target: logged action equal to / different from the target's).
        q_logged: Optional model estimate ``Q_hat(s_t, a_t)`` of the target policy's
            action value at the logged action (e.g. from fitted Q evaluation).
        v_target: Optional model estimate ``V_hat(s_t) = sum_a pi(a|s_t) Q_hat(s_t, a)``.

    Probabilities may exceed 1 by at most ``1e-9`` (rounding). Equality is identity
    (``eq=False``): arrays do not define a boolean ``==``.
    """

    episode: np.ndarray
    step: np.ndarray
    reward: np.ndarray
    behavior_prob: np.ndarray
    target_prob: np.ndarray
    q_logged: np.ndarray | None = None
    v_target: np.ndarray | None = None

    def __post_init__(self) -> None:
        episode = _int_array("episode", self.episode)
        n = episode.shape[0]
        if n == 0:
            raise ValueError("episode: no rows (need at least one logged decision)")
        step = _int_array("step", self.step, n)
        reward = _float_array("reward", self.reward, n)
        behavior = _float_array("behavior_prob", self.behavior_prob, n)
        target = _float_array("target_prob", self.target_prob, n)
        _check_range("behavior_prob", behavior, 0.0, 1.0, low_open=True)
        _check_range("target_prob", target, 0.0, 1.0, low_open=False)
        models = {
            name: None if (values := getattr(self, name)) is None else _float_array(name, values, n)
            for name in ("q_logged", "v_target")
        }
        descending = np.diff(episode) < 0
        if descending.any():
            row = _first_bad(descending) + 1
            raise ValueError(
                f"episode: rows not sorted by episode: row {row} has episode {episode[row]} "
                f"after episode {episode[row - 1]} (sort by (episode, step) or use "
                "LoggedData.from_arrays)"
            )
        first = np.r_[True, episode[1:] != episode[:-1]]
        expected = np.r_[0, step[:-1] + 1]
        expected[first] = 0
        bad = step != expected
        if bad.any():
            row = _first_bad(bad)
            if first[row]:
                msg = f"episode {episode[row]} starts at step {step[row]} (row {row}), expected 0"
            else:
                msg = (
                    f"row {row} of episode {episode[row]} has step {step[row]} after step "
                    f"{step[row - 1]}, expected {expected[row]}"
                )
            raise ValueError(
                f"step: {msg}; steps must be contiguous 0, 1, 2, ... in row order in each episode"
            )
        for name, arr in (
            ("episode", episode),
            ("step", step),
            ("reward", reward),
            ("behavior_prob", behavior),
            ("target_prob", target),
            *models.items(),
        ):
            object.__setattr__(self, name, None if arr is None else _readonly(arr))

    @classmethod
    def from_arrays(
        cls,
        episode_ids: Any,
        step: Any,
        reward: Any,
        behavior_prob: Any,
        target_prob: Any,
        q_logged: Any | None = None,
        v_target: Any | None = None,
    ) -> LoggedData:
        """Builds :class:`LoggedData` from rows in any order with arbitrary episode ids.

        Episode ids (ints, strings, ...) are re-indexed to ``0..n-1`` in sorted-id order and the
        rows sorted by (episode, step). Steps must still be ``0..T_i`` within each episode.

        Args:
            episode_ids: Episode id per row, any sortable dtype.
            step: 0-based step per row.
            reward: Reward per row.
            behavior_prob: Behaviour probability of the logged action per row.
            target_prob: Target probability of the logged action per row.
            q_logged: Optional ``Q_hat(s_t, a_t)`` per row.
            v_target: Optional ``V_hat(s_t)`` per row.

        Returns:
            Validated, sorted :class:`LoggedData`.

        Raises:
            ValueError: On length mismatch, unsortable ids or any check of the constructor.
        """
        ids = np.asarray(episode_ids)
        if ids.ndim != 1:
            raise ValueError(f"episode_ids: expected a 1-D array, got shape {ids.shape}")
        n = ids.shape[0]
        step_arr = _int_array("step", step, n)
        columns = {"reward": reward, "behavior_prob": behavior_prob, "target_prob": target_prob,
                   "q_logged": q_logged, "v_target": v_target}
        arrays: dict[str, np.ndarray | None] = {}
        for name, values in columns.items():
            if values is None:
                arrays[name] = None
                continue
            arr = np.asarray(values)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise ValueError(
                    f"{name}: shape {arr.shape} does not match episode_ids' length {n}"
                )
            arrays[name] = arr
        try:
            _, dense = np.unique(ids, return_inverse=True)
        except TypeError as exc:
            raise ValueError(f"episode_ids: ids are not sortable: {exc}") from None
        order = np.lexsort((step_arr, dense.ravel()))
        # reward/behavior_prob/target_prob are checked by the constructor, so values stay loose
        sorted_arrays: dict[str, Any] = {
            k: None if v is None else v[order] for k, v in arrays.items()
        }
        return cls(episode=dense.ravel()[order], step=step_arr[order], **sorted_arrays)

    @property
    def n_rows(self) -> int:
        """Number of logged decisions."""
        return int(self.episode.shape[0])

    @cached_property
    def _starts(self) -> np.ndarray:
        return np.flatnonzero(np.r_[True, self.episode[1:] != self.episode[:-1]])

    @cached_property
    def episode_index(self) -> np.ndarray:
        """Dense episode index ``0..n_episodes-1`` per row (read-only)."""
        first = np.zeros(self.n_rows, dtype=np.int64)
        first[self._starts] = 1
        return _readonly(np.cumsum(first) - 1)

    @property
    def n_episodes(self) -> int:
        """Number of episodes ``n``."""
        return int(self._starts.shape[0])

    @cached_property
    def episode_lengths(self) -> np.ndarray:
        """Number of decisions ``T_i + 1`` of each episode (read-only)."""
        return _readonly(np.diff(np.r_[self._starts, self.n_rows]))

    @property
    def horizon(self) -> int:
        """Length of the longest episode ``H = max_i (T_i + 1)``."""
        return int(self.episode_lengths.max())

    @cached_property
    def ratio(self) -> np.ndarray:
        """Per-decision importance ratio ``pi(a_t|s_t) / b(a_t|s_t)`` per row (read-only)."""
        return _readonly(self.target_prob / self.behavior_prob)

    def padded(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Row values as an ``[n_episodes, horizon]`` matrix, ``fill`` after each episode's end."""
        out = np.full((self.n_episodes, self.horizon), fill, dtype=np.float64)
        out[self.episode_index, self.step] = values
        return out

    def cumulative_weights(self, max_weight: float | None = None) -> np.ndarray:
        """``[n_episodes, horizon]`` cumulative weights ``w_{i,t}``, final weight carried on.

        Args:
            max_weight: Optional clip applied to the cumulative weights.
        """
        w = np.cumprod(self.padded(self.ratio, fill=1.0), axis=1)
        if max_weight is not None:
            np.minimum(w, max_weight, out=w)
        return w

    def trajectory_weights(self, max_weight: float | None = None) -> np.ndarray:
        """Final trajectory weight ``w_{i,T_i}`` of each episode."""
        return self.cumulative_weights(max_weight)[:, -1]

    def episode_returns(self, gamma: float = 1.0) -> np.ndarray:
        """Discounted return ``G_i = sum_t gamma^t r_{i,t}`` of each episode."""
        return np.bincount(self.episode_index, weights=self.reward * float(gamma) ** self.step,
                           minlength=self.n_episodes)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval.

    Attributes:
        name: Estimator name (``ESTIMATORS`` entry, or ``"behavior"`` for the on-policy value).
        value: Point estimate on the full data.
        low: Lower end of the ``1 - alpha`` percentile bootstrap interval (NaN without
            bootstrap).
        high: Upper end of the interval (NaN without bootstrap).
        stderr: Standard deviation of the bootstrap replicates (NaN without bootstrap).
    """

    name: str
    value: float
    low: float
    high: float
    stderr: float

    def as_dict(self) -> dict[str, float]:
        """``{"value", "low", "high", "stderr"}`` as plain floats."""
        return {"value": float(self.value), "low": float(self.low), "high": float(self.high),
                "stderr": float(self.stderr)}


# --------------------------------------------------------------------------------------------
# Per-episode sufficient statistics
# --------------------------------------------------------------------------------------------


class _Stats:
    """Per-episode statistics matrix ``M`` ``[n, K]`` and its named column blocks.

    Each estimator is a function of the column sums ``S = c @ M`` (``c`` = episode counts)
    and of the resample size ``n = sum(c)``:

    ============  ========================================  ================================
    block         per-episode statistic                     used by
    ============  ========================================  ================================
    ``wG``        ``w_{i,T_i} G_i``                         ipw, snipw
    ``wT``        ``w_{i,T_i}``                             snipw
    ``pdis``      ``sum_t gamma^t w_{i,t} r_{i,t}``         pdis
    ``v0``        ``V_hat(s_{i,0})``                        dm
    ``dr``        DR sum of episode ``i``                   dr
    ``wr[t]``     ``w_{i,t} r_{i,t}``                       snpdis
    ``w[t]``      ``w_{i,t}`` (carried after the end)       snpdis, sndr
    ``wres[t]``   ``w_{i,t} (r_{i,t} - Q_hat_{i,t})``       sndr
    ``wv[t]``     ``w_{i,t-1} V_hat_{i,t}``                 sndr
    ============  ========================================  ================================
    """

    def __init__(self, data: LoggedData, names: tuple[str, ...], gamma: float,
                 max_weight: float | None) -> None:
        self.names = names
        self.discount = float(gamma) ** np.arange(data.horizon)
        w = data.cumulative_weights(max_weight)
        r = data.padded(data.reward)
        blocks: dict[str, np.ndarray] = {}
        if {"ipw", "snipw"} & set(names):
            blocks["wG"] = w[:, -1] * (r @ self.discount)
            blocks["wT"] = w[:, -1]
        if "pdis" in names:
            blocks["pdis"] = (w * r) @ self.discount
        if "snpdis" in names:
            blocks["wr"] = w * r
        if {"snpdis", "sndr"} & set(names):
            blocks["w"] = w
        if {"dm", "dr", "sndr"} & set(names):
            # callers pass only estimators whose _MODEL_FIELDS are present
            assert data.v_target is not None
            v = data.padded(data.v_target)
            blocks["v0"] = v[:, 0]
        if {"dr", "sndr"} & set(names):
            assert data.q_logged is not None
            q = data.padded(data.q_logged)
            w_prev = np.hstack([np.ones((w.shape[0], 1)), w[:, :-1]])
            wres, wv = w * (r - q), w_prev * v
            if "dr" in names:
                blocks["dr"] = (wres + wv) @ self.discount
            if "sndr" in names:
                blocks["wres"], blocks["wv"] = wres, wv
        self.slices: dict[str, slice | int] = {}
        columns, k = [], 0
        for key, block in blocks.items():
            if block.ndim == 1:
                self.slices[key] = k
                columns.append(block[:, None])
                k += 1
            else:
                self.slices[key] = slice(k, k + block.shape[1])
                columns.append(block)
                k += block.shape[1]
        self.matrix = np.hstack(columns)

    def values(self, sums: np.ndarray, n: float) -> np.ndarray:
        """``[b, len(names)]`` estimates from ``[b, K]`` column sums of resamples of size n."""
        s = {key: sums[:, sl] for key, sl in self.slices.items()}
        out = np.empty((sums.shape[0], len(self.names)))
        with np.errstate(divide="ignore", invalid="ignore"):
            for j, name in enumerate(self.names):
                if name == "ipw":
                    out[:, j] = s["wG"] / n
                elif name == "snipw":
                    out[:, j] = np.where(s["wT"] > 0, s["wG"] / s["wT"], np.nan)
                elif name == "pdis":
                    out[:, j] = s["pdis"] / n
                elif name == "snpdis":
                    per_step = _safe_ratio(s["wr"], s["w"]) @ self.discount
                    out[:, j] = np.where((s["w"] > 0).all(axis=1), per_step, np.nan)
                elif name == "dm":
                    out[:, j] = s["v0"] / n
                elif name == "dr":
                    out[:, j] = s["dr"] / n
                elif name == "sndr":
                    den = s["w"]
                    den_prev = np.hstack([np.full((den.shape[0], 1), n), den[:, :-1]])
                    terms = _safe_ratio(s["wres"], den) + _safe_ratio(s["wv"], den_prev)
                    out[:, j] = terms @ self.discount
                else:  # pragma: no cover - names are validated by the caller
                    raise AssertionError(name)
        return out


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with ``0 / 0 := 0`` (denominators are sums of nonnegative weights)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _check_common(gamma: float, n_bootstrap: int, alpha: float) -> None:
    if not (isinstance(gamma, Real) and 0.0 <= gamma <= 1.0):
        raise ValueError(f"gamma: expected a number in [0, 1], got {gamma!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) \
            or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap: expected an integer >= 0, got {n_bootstrap!r}")
    if not (isinstance(alpha, Real) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")


def _resolve_names(names: str | Iterable[str]) -> tuple[str, ...]:
    requested = (names,) if isinstance(names, str) else tuple(names)
    unknown = [name for name in requested if name not in ESTIMATORS]
    if unknown:
        raise ValueError(f"names: unknown estimator(s) {unknown}; choose from {ESTIMATORS}")
    return tuple(dict.fromkeys(requested))


def estimate(
    data: LoggedData,
    names: str | Iterable[str] = ESTIMATORS,
    *,
    gamma: float = 1.0,
    n_bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    max_weight: float | None = None,
) -> dict[str, Estimate]:
    """Estimates the target policy's value with several OPE estimators and bootstrap CIs.

    Formulas are in the module docstring. ``dm`` needs ``data.v_target``; ``dr`` and ``sndr``
    need ``data.q_logged`` and ``data.v_target``; estimators whose model inputs are missing
    are skipped (absent from the result) rather than raising.

    Intervals are percentile bootstrap intervals over whole episodes (``n_bootstrap``
    multinomial resamples, shared by all estimators, deterministic given ``seed``); ``stderr``
    is the bootstrap standard deviation. With ``n_bootstrap < 2`` (or a single episode) ``low``,
    ``high`` and ``stderr`` are NaN. Percentile intervals need not contain the point estimate
    when the replicate distribution is very skewed (few episodes, extreme weights).

    Args:
        data: Logged decisions with target and behaviour probabilities.
        names: Estimators to compute (subset of ``ESTIMATORS``; a single name is accepted).
        gamma: Discount factor in ``[0, 1]``.
        n_bootstrap: Number of bootstrap resamples (``0`` or ``1`` disables intervals).
        alpha: Intervals have two-sided level ``1 - alpha``.
        seed: Seed of the bootstrap resampling.
        max_weight: Optional clip of cumulative importance weights (biased; see module doc).

    Returns:
        ``{name: Estimate}`` in the order of ``names``.

    Raises:
        ValueError: For unknown names or parameters out of range.
    """
    if not isinstance(data, LoggedData):
        raise ValueError(f"data: expected LoggedData, got {type(data).__name__}")
    requested = _resolve_names(names)
    _check_common(gamma, n_bootstrap, alpha)
    if max_weight is not None and not (
        isinstance(max_weight, Real) and math.isfinite(max_weight) and max_weight > 0
    ):
        raise ValueError(f"max_weight: expected a positive finite number, got {max_weight!r}")
    available = tuple(
        name for name in requested
        if all(getattr(data, f) is not None for f in _MODEL_FIELDS.get(name, ()))
    )
    if not available:
        return {}
    stats = _Stats(data, available, gamma, max_weight)
    n = float(data.n_episodes)
    point = stats.values(stats.matrix.sum(axis=0, keepdims=True), n)[0]
    low, high, stderr = _interval(stats.matrix, stats.values, len(available), n_bootstrap,
                                  alpha, seed)
    return {
        name: Estimate(name, float(point[j]), float(low[j]), float(high[j]), float(stderr[j]))
        for j, name in enumerate(available)
    }


EPISODE_ESTIMATORS: tuple[str, ...] = ("pdis", "dm", "dr")
"""Estimators that are the mean of one statistic per episode (:func:`per_episode`)."""


def per_episode(data: LoggedData, name: str, *, gamma: float = 1.0,
                max_weight: float | None = None) -> np.ndarray:
    """``[n_episodes]``: episode ``i``'s term of estimator ``name`` (one of
    ``EPISODE_ESTIMATORS``), whose mean over the episodes is :func:`estimate`'s point value.

    The difference of two policies' terms on the same episodes is what a paired,
    per-episode (influence-function) standard error of their gain is computed from.
    """
    if name not in EPISODE_ESTIMATORS:
        raise ValueError(f"per_episode: {name!r} is not a mean over episodes; choose one of "
                         f"{EPISODE_ESTIMATORS}")
    missing = [f for f in _MODEL_FIELDS.get(name, ()) if getattr(data, f) is None]
    if missing:
        raise ValueError(f"per_episode: {name} needs {', '.join(missing)}")
    stats = _Stats(data, (name,), gamma, max_weight)
    block = {"pdis": "pdis", "dm": "v0", "dr": "dr"}[name]
    return np.array(stats.matrix[:, stats.slices[block]], dtype=np.float64)


def estimate_on_counts(
    data: LoggedData,
    names: str | Iterable[str],
    counts: np.ndarray,
    *,
    gamma: float = 1.0,
    max_weight: float | None = None,
) -> np.ndarray:
    """Estimates on given resamples of the episodes: ``[resamples, len(names)]``.

    Row ``b`` is every estimator evaluated on the resample in which episode ``i`` appears
    ``counts[b, i]`` times (the same statistics :func:`estimate` bootstraps). Used to pair a
    resample with a model refitted on it: the refitted bootstrap of the model-based
    estimators (``offline_rl.ope.evaluate``).

    Args:
        data: Logged decisions (with the model inputs the estimators need).
        names: Estimators (subset of ``ESTIMATORS``; all must be computable from ``data``).
        counts: ``[resamples, n_episodes]`` nonnegative episode counts.
        gamma: Discount factor in ``[0, 1]``.
        max_weight: Optional clip of cumulative importance weights.

    Raises:
        ValueError: Unknown names, missing model inputs, or counts of the wrong shape.
    """
    requested = _resolve_names(names)
    missing = [n for n in requested
               if any(getattr(data, f) is None for f in _MODEL_FIELDS.get(n, ()))]
    if missing:
        raise ValueError(f"names: {missing} need q_logged/v_target, which data lacks")
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != data.n_episodes:
        raise ValueError(f"counts: expected shape (resamples, {data.n_episodes}), got "
                         f"{counts.shape}")
    stats = _Stats(data, requested, gamma, max_weight)
    return stats.values(counts @ stats.matrix, float(data.n_episodes))


def _interval(matrix: np.ndarray, statistic: Any, m: int, n_bootstrap: int, alpha: float,
              seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if n_bootstrap < 2 or matrix.shape[0] < 2:
        nan = np.full(m, np.nan)
        return nan, nan, nan
    replicates = bootstrap_sums(matrix, statistic, n_bootstrap, seed)
    return percentile_interval(replicates, alpha)


def on_policy_value(
    reward: Any,
    episode: Any,
    *,
    step: Any | None = None,
    gamma: float = 1.0,
    n_bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate:
    """The behaviour policy's value from its own logs: mean discounted episode return.

    ``V(b) = (1/n) sum_i sum_t gamma^t r_{i,t}``, with a percentile bootstrap interval over
    episodes (same resampling scheme as :func:`estimate`).

    Args:
        reward: Reward per row.
        episode: Episode id per row (any sortable ids; rows need not be sorted).
        step: Optional step per row giving the discount exponent. Without it the rows of each
            episode are taken to be in time order (exponent = position within the episode);
            irrelevant when ``gamma == 1``.
        gamma: Discount factor in ``[0, 1]``.
        n_bootstrap: Number of bootstrap resamples (``0`` disables intervals).
        alpha: Two-sided level ``1 - alpha``.
        seed: Seed of the bootstrap.

    Returns:
        :class:`Estimate` named ``"behavior"``.
    """
    _check_common(gamma, n_bootstrap, alpha)
    returns = episode_returns(reward, episode, step=step, gamma=gamma)
    matrix = returns[:, None]

    def statistic(sums: np.ndarray, n: float) -> np.ndarray:
        return sums / n

    value = float(returns.mean())
    low, high, stderr = _interval(matrix, statistic, 1, n_bootstrap, alpha, seed)
    return Estimate("behavior", value, float(low[0]), float(high[0]), float(stderr[0]))


def episode_returns(reward: Any, episode: Any, *, step: Any | None = None,
                    gamma: float = 1.0) -> np.ndarray:
    """Discounted return of each episode, in the order of the sorted episode ids.

    Arguments as in :func:`on_policy_value` (without ``step``, rows of an episode are in time
    order and the discount exponent is the position within the episode).
    """
    ids = np.asarray(episode)
    if ids.ndim != 1 or ids.shape[0] == 0:
        raise ValueError(f"episode: expected a non-empty 1-D array, got shape {ids.shape}")
    rewards = _float_array("reward", reward, ids.shape[0])
    try:
        _, dense = np.unique(ids, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"episode: ids are not sortable: {exc}") from None
    dense = dense.ravel()
    if step is None:
        order = np.argsort(dense, kind="stable")
        sorted_ids = dense[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_ids)) + 1]
        exponent = np.empty(dense.shape[0], dtype=np.int64)
        exponent[order] = np.arange(dense.shape[0]) - starts[sorted_ids]
    else:
        exponent = _int_array("step", step, ids.shape[0])
        if (exponent < 0).any():
            row = _first_bad(exponent < 0)
            raise ValueError(f"step: negative value {exponent[row]} at row {row}")
    return np.bincount(dense, weights=rewards * float(gamma) ** exponent)


def _empirical_bernstein(y: np.ndarray, c: np.ndarray, delta: float, n: int) -> np.ndarray:
    """Maurer-Pontil lower bound on ``E[Y]`` for ``Y in [0, c]`` from sample ``y`` (rows).

    ``mean(y) - 7 c ln(2/delta) / (3 (n - 1)) - sqrt(2 ln(2/delta) var(y) / n)`` where the
    mean and unbiased variance are those of ``y``, and ``n`` the sample size plugged into the
    penalties (the size of ``y`` for the bound itself, the size of the held-out part when
    predicting the bound of a candidate clip).
    """
    log_term = math.log(2.0 / delta)
    mean = y.mean(axis=-1)
    var = y.var(axis=-1, ddof=1)
    return mean - 7.0 * c * log_term / (3.0 * (n - 1)) - np.sqrt(2.0 * log_term * var / n)


def high_confidence_lower_bound(
    data: LoggedData,
    *,
    delta: float = 0.05,
    gamma: float = 1.0,
    weight_clip: float | Literal["auto"] = "auto",
    return_range: tuple[float, float] | None = None,
    split_fraction: float = 0.2,
    seed: int = 0,
) -> float:
    """A ``1 - delta`` lower confidence bound on ``V(pi)`` (HCOPE, Thomas et al. 2015).

    Returns are normalised to ``[0, 1]`` with ``return_range = (lo, hi)``:
    ``G'_i = (G_i - lo) / (hi - lo)``. The importance-weighted returns
    ``X_i = w_{i,T_i} G'_i >= 0`` satisfy ``E_b[X] <= V'(pi)`` (equality under full support);
    clipping at ``c``, ``Y_i = min(X_i, c)``, only lowers the mean, so the empirical-Bernstein
    bound of Maurer & Pontil (2009, Thm. 4) on ``E[Y]``::

        L' = mean(Y) - 7 c ln(2/delta) / (3 (n - 1)) - sqrt(2 ln(2/delta) Var_n(Y) / n)

    holds for ``V'(pi)`` with probability at least ``1 - delta``. The result is
    ``lo + (hi - lo) * clip(L', 0, 1)`` (clipping to the known range keeps validity).

    With ``weight_clip="auto"``, ``c`` is chosen as in Thomas et al. (2015, Sec. 4): a random
    ``split_fraction`` of the episodes picks the ``c`` (among quantiles of its ``X``) that
    maximises the bound predicted for the other episodes, on which the bound is then
    computed; this keeps the guarantee since ``c`` does not depend on the bound's sample.

    Assumptions:
        Episodes are i.i.d. under the behaviour policy; behaviour probabilities are the true
        logging probabilities; every return lies in ``return_range``. If ``return_range`` is
        None the observed min and max of the episode returns are used: the bound is then
        data-dependent and not a strict guarantee (it can be too high when the target policy
        reaches returns outside the observed range). With unclipped ``c >= max X`` the
        bound is conservative; small ``c`` trades bias (downwards, still valid) for width.

    Args:
        data: Logged decisions.
        delta: Allowed failure probability, in ``(0, 1)``.
        gamma: Discount factor in ``[0, 1]``.
        weight_clip: Threshold ``c > 0`` on ``X_i`` (in normalised return units, so never
            stronger than clipping the weight at ``c``), or ``"auto"``.
        return_range: Known ``(lo, hi)`` bounds of a discounted episode return.
        split_fraction: Share of episodes used to choose ``c`` when ``weight_clip="auto"``.
        seed: Seed of the ``"auto"`` split.

    Returns:
        The lower bound; ``lo`` (the trivial bound) when there are too few episodes
        (fewer than 2 in the bound's sample).

    Raises:
        ValueError: For parameters out of range or returns outside ``return_range``.
    """
    if not (0.0 < delta < 1.0):
        raise ValueError(f"delta: expected a number in (0, 1), got {delta!r}")
    _check_common(gamma, 0, 0.5)
    if not (0.0 < split_fraction < 1.0):
        raise ValueError(f"split_fraction: expected a number in (0, 1), got {split_fraction!r}")
    if weight_clip != "auto" and not (
        isinstance(weight_clip, Real) and math.isfinite(weight_clip) and weight_clip > 0
    ):
        raise ValueError(f"weight_clip: expected a positive number or 'auto', got {weight_clip!r}")
    returns = data.episode_returns(gamma)
    if return_range is None:
        lo, hi = float(returns.min()), float(returns.max())
    else:
        lo, hi = (float(x) for x in return_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"return_range: expected finite lo < hi, got {return_range!r}")
        outside = (returns < lo) | (returns > hi)
        if outside.any():
            i = _first_bad(outside)
            raise ValueError(
                f"return_range: return {returns[i]:g} of episode {i} is outside [{lo:g}, {hi:g}]"
            )
    if hi <= lo:  # every observed return equal: nothing to bound beyond it
        return lo
    x = data.trajectory_weights() * (returns - lo) / (hi - lo)
    if weight_clip == "auto":
        rng = np.random.default_rng(seed)
        perm = rng.permutation(x.shape[0])
        n_pre = int(round(split_fraction * x.shape[0]))
        pre, post = x[perm[:n_pre]], x[perm[n_pre:]]
        if pre.shape[0] < 2 or post.shape[0] < 2:
            return lo
        candidates = np.unique(np.r_[np.quantile(pre, np.linspace(0.0, 1.0, 101)), 1.0])
        candidates = candidates[candidates > 0]
        if candidates.size == 0:
            return lo
        predicted = _empirical_bernstein(np.minimum(pre[None, :], candidates[:, None]),
                                         candidates, delta, post.shape[0])
        clip, sample = float(candidates[int(np.argmax(predicted))]), post
    else:
        clip, sample = float(weight_clip), x
    if sample.shape[0] < 2:
        return lo
    bound = float(_empirical_bernstein(np.minimum(sample, clip), np.asarray(clip), delta,
                                       sample.shape[0]))
    return lo + (hi - lo) * min(max(bound, 0.0), 1.0)
