"""Evaluating candidate policies on logged decisions: FQE plus the estimator suite.

For each candidate: the target policy's action at every logged state, fitted Q evaluation
(FQE) of that policy (its Q-function gives the direct-method estimate and the control
variate of doubly robust), every estimator of ``offline_rl.ope.estimators`` with bootstrap
intervals, and the diagnostics. Values are undiscounted expected returns per episode
(``gamma = 1``), the same quantity the simulator's ``true_value`` measures.

A policy is anything with ``predict(observations) -> actions`` (a d3rlpy algorithm, an
exported policy, a hand-written rule). Doubly robust (``dr``, ``sndr``) clips the cumulative
importance weights at ``model_max_weight``: a deterministic candidate's weights over a
multi-step episode are products of ``1 / b`` and a handful of episodes would otherwise
dominate; clipping leans the estimate towards the model there.

Two FQE implementations are available (``OPEConfig.fqe_backend``):

* ``torch`` (default): :mod:`offline_rl.ope.fqe_torch`, squared loss, one fitted-Q iteration
  per step of the horizon, any policy. FQE is refitted on ``fqe_refits`` bootstrap resamples
  of the episodes (all members, and those of every policy evaluated on the same data, trained
  together in one batched network: :func:`evaluate_targets`). The model the
  estimators use is the average of the full-data fit and the refits (bagging: FQE's fits
  vary a lot from one resample to the next, and their average is steadier), and the
  intervals of the model-based estimators come from the refits, so they include the model's
  own estimation error.
* ``d3rlpy``: d3rlpy's ``DiscreteFQE`` (Huber loss on scaled rewards, periodic target
  syncs), d3rlpy algorithms only. Its direct-method interval resamples episodes around the
  one fitted model and so understates that model's error.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from offline_rl.export.exploration import draw
from offline_rl.ope.bootstrap import resample_counts
from offline_rl.ope.diagnostics import Diagnostics, compute_diagnostics, estimator_disagreement
from offline_rl.ope.estimators import (
    ESTIMATORS,
    Estimate,
    LoggedData,
    episode_returns,
    estimate,
    estimate_on_counts,
    on_policy_value,
    per_episode,
)
from offline_rl.ope.replay import REPLAY, ReplayData, replay_estimate

if TYPE_CHECKING:  # annotations only: the command line's defaults load this module
    from offline_rl.data.arrays import DecisionArrays
    from offline_rl.ope.fqe_torch import FQEPolicies, FQESettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OPEConfig:
    """How candidates are evaluated.

    Attributes:
        estimators: Estimators to compute (names of ``offline_rl.ope.estimators.ESTIMATORS``).
        gamma: Discount of the evaluated return (1.0: undiscounted return per episode).
        n_bootstrap: Bootstrap resamples of the episodes for the intervals (0: no intervals).
        alpha: Intervals are ``1 - alpha`` two-sided; the gate uses their lower ends, so the
            default 0.1 makes its bound a one-sided 95% one.
        fqe_backend: ``"torch"`` (:mod:`offline_rl.ope.fqe_torch`, any policy, refitted
            direct-method interval) or ``"d3rlpy"`` (``DiscreteFQE``, d3rlpy algorithms only).
        fqe_steps: Gradient steps of FQE per candidate.
        fqe_learning_rate: FQE's Adam learning rate (the torch backend decays it within each
            fitted-Q iteration).
        fqe_batch_size: FQE mini-batch size.
        fqe_hidden_units: FQE Q-network hidden layers.
        fqe_refits: Torch backend: FQE refits on bootstrap resamples of the episodes, for the
            intervals of ``refit_estimators``; below 2 (or without bootstrap) every interval
            comes from resampling episodes around the one fit.
        refit_estimators: Model-based estimators whose interval comes from the refits:
            ``value +- t * sd`` of the estimator on each resample with the model refitted on
            it (Student's t quantile for ``fqe_refits - 1`` degrees of freedom), so the
            interval includes the model's own estimation error.
        fqe_bagging: Torch backend with refits: the model is the average of the full-data
            fit and the refits' Q-values (False: the full-data fit alone).
        fqe_folds: Cross-fitting folds of FQE (torch backend; 1: off, every model value
            comes from fits on all episodes). With ``k >= 2`` the episodes are split into
            ``k`` seeded folds and every fit (the full-data one and each refit) becomes ``k``
            fits, each on the other folds' episodes, whose Q-values are used on the left-out
            fold's rows only: no row's model value comes from a model fitted on its own
            episode, so the doubly robust correction is not fitted to the noise it
            corrects. All folds train in one batched network (``k`` times the members).
        model_max_weight: Clip of the cumulative importance weights in ``dr`` and ``sndr``
            (None: no clip); the importance-sampling estimators are never clipped.
        fqe_target_update_interval: d3rlpy backend: steps between target-network syncs.
        fqe_reward_scale: d3rlpy backend: reward multiplier inside FQE (Huber loss, see
            ``TrainingConfig``); ``None`` picks ``1 / p99(|reward|)``. Q-values are scaled back
            before use. (The torch backend's squared loss does not depend on the scale.)
        seed: Seed of FQE and of the bootstrap.
        device: ``auto``, ``cpu`` or ``cuda:N``. The d3rlpy backend resolves ``auto`` to CUDA
            when available; the torch backend runs on one CPU thread unless ``cuda[:N]`` is
            named (``auto`` keeps it on the CPU, where it was measured: its networks are small).
    """

    estimators: tuple[str, ...] = ESTIMATORS
    gamma: float = 1.0
    n_bootstrap: int = 500
    alpha: float = 0.1
    fqe_backend: str = "torch"
    fqe_steps: int = 1000
    fqe_learning_rate: float = 1e-3
    fqe_batch_size: int = 256
    fqe_hidden_units: tuple[int, ...] = (64, 64)
    fqe_refits: int = 8
    refit_estimators: tuple[str, ...] = ("dm", "dr", "sndr")
    fqe_bagging: bool = True
    fqe_folds: int = 1
    model_max_weight: float | None = 10.0
    fqe_target_update_interval: int = 200
    fqe_reward_scale: float | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.fqe_backend not in FQE_BACKENDS:
            raise ValueError(f"fqe_backend: expected one of {FQE_BACKENDS}, "
                             f"got {self.fqe_backend!r}")
        bad = [n for n in self.refit_estimators if n not in ("dm", "dr", "sndr")]
        if bad:
            raise ValueError(f"refit_estimators: {bad} do not use the model; choose from "
                             "dm, dr, sndr")
        if self.model_max_weight is not None and not self.model_max_weight > 0:
            raise ValueError(f"model_max_weight: expected a positive number or None, got "
                             f"{self.model_max_weight!r}")
        if self.fqe_refits < 0:
            raise ValueError(f"fqe_refits: expected an integer >= 0, got {self.fqe_refits!r}")
        if self.fqe_folds < 1:
            raise ValueError(f"fqe_folds: expected an integer >= 1, got {self.fqe_folds!r}")


FQE_BACKENDS: tuple[str, ...] = ("torch", "d3rlpy")
"""Accepted values of ``OPEConfig.fqe_backend``."""


class RefitReplicates(TypedDict):
    """Each refit estimator's value on every FQE refit resample (the gate's paired
    replicates), and the ``alpha`` of the intervals built from them."""

    alpha: float
    values: dict[str, list[float]]


class EpisodeGain(TypedDict):
    """The gain of a policy over an incumbent paired per held-out episode: the mean of the
    ``n`` per-episode differences of the two estimators' terms (``gain``) and its standard
    error ``se`` (their standard deviation over ``sqrt(n)``)."""

    gain: float
    se: float
    n: int


class EvaluationDetails(TypedDict, total=False):
    """What an evaluation records besides its estimates (``PolicyEvaluation.extra``; stored
    with every estimate row in ``ope_estimates.details``). Every key is optional: an
    evaluation records what its estimators produced."""

    action_distribution: list[float]
    """Share of the evaluated decisions at which the target chose each action."""
    logged_action_distribution: list[float]
    """Share of the logged decisions with each action."""
    fqe_backend: str
    fqe_iterations: int
    fqe_bellman_mse_scaled: float
    fqe_reward_scale: float
    fqe_refits: int
    fqe_folds: int
    fqe_bagged: bool
    refit_replicates: RefitReplicates
    replay: str
    """``"ok"``, or why the data could not be replayed (no ``replay`` estimate then)."""
    model: str
    """Why there is no Q-model (``NO_FEATURES``): dm, dr and sndr are left out."""
    episode_gains: dict[str, dict[str, EpisodeGain]]
    """Per incumbent name, per estimator (``EPISODE_PAIRED``): the gain over that incumbent
    paired per episode (:func:`with_episode_gains`)."""


EPISODE_PAIRED: tuple[str, ...] = ("dr",)
"""Estimators whose per-episode terms are kept (``PolicyEvaluation.episode_terms``) for a gain
paired per episode. Unclipped doubly robust with logged propensities has mean ``V(pi)``
whatever a fixed Q-model; the nightly terms are clipped and use FQE fitted on the same
episodes, and there their standard error understates the error (``GateConfig.paired_by``)."""

MODEL_ESTIMATORS: tuple[str, ...] = ("dm", "dr", "sndr")
"""Estimators that need the Q-model: ``EvaluationDetails.model`` says why they are missing."""


CANDIDATE, INCUMBENT = "candidate", "incumbent"
ROLES: tuple[str, ...] = (CANDIDATE, INCUMBENT)
"""What an evaluated policy is to the gate (``PolicyEvaluation.role``)."""


@dataclass(frozen=True)
class PolicyEvaluation:
    """One policy's estimates and diagnostics on the evaluation data.

    Attributes:
        name: The policy's label in reports (a candidate's name; the incumbent's is
            ``incumbent:<candidate>@<day it was promoted>``).
        estimates: Estimate by estimator name.
        diagnostics: Importance-weight diagnostics of the policy on the data.
        disagreement: Spread of the estimators' point estimates.
        extra: Details the estimators leave behind (action shares, FQE settings, refit
            replicates, why an estimator is missing), by key.
        role: ``"candidate"`` (one of the night's candidates, which the gate judges) or
            ``"incumbent"`` (the policy in production, re-valued on the same data, which
            the gate compares them with).
    """

    name: str
    estimates: dict[str, Estimate]
    diagnostics: Diagnostics
    disagreement: float
    extra: EvaluationDetails = field(default_factory=lambda: EvaluationDetails())
    role: str = CANDIDATE
    episode_terms: dict[str, np.ndarray] = field(default_factory=dict, compare=False,
                                                 repr=False)
    """Per ``EPISODE_PAIRED`` estimator, each held-out episode's term (its mean is the
    estimate); in memory only, for :func:`with_episode_gains`."""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role: expected one of {ROLES}, got {self.role!r}")

    def missing_reason(self, estimator: str) -> str | None:
        """Why ``estimator`` has no estimate, where the evaluation recorded it (None: it has
        one, or no reason was recorded)."""
        if estimator in self.estimates:
            return None
        if estimator == "replay":
            return self.extra.get("replay")
        if estimator in MODEL_ESTIMATORS:
            return self.extra.get("model")
        return None

    def episode_gain(self, incumbent: str, estimator: str) -> EpisodeGain | None:
        """The gain of ``estimator`` over ``incumbent`` paired per episode, if recorded."""
        return (self.extra.get("episode_gains") or {}).get(incumbent, {}).get(estimator)

    def replicates(self, estimator: str) -> tuple[tuple[float, ...], float] | None:
        """``(values on each refit resample, alpha)`` of ``estimator``, if recorded."""
        block = self.extra.get("refit_replicates")
        values = block["values"].get(estimator) if block else None
        if not block or not values:
            return None
        return tuple(float(v) for v in values), float(block["alpha"])

    @property
    def is_incumbent(self) -> bool:
        return self.role == INCUMBENT


def fit_fqe(algo: Any, dataset: Any, config: OPEConfig, reward_scale: float = 1.0) -> Any:
    """d3rlpy ``DiscreteFQE`` of ``algo``'s greedy policy, fitted on ``dataset``.

    Its Q-values are in units of ``reward * reward_scale``.
    """
    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.preprocessing import MultiplyRewardScaler

    from offline_rl.algos.training import seed_everything, select_device

    seed_everything(config.seed)
    fqe = d3rlpy.ope.DiscreteFQE(
        algo=algo,
        config=d3rlpy.ope.FQEConfig(
            learning_rate=config.fqe_learning_rate,
            batch_size=config.fqe_batch_size,
            gamma=config.gamma,
            target_update_interval=config.fqe_target_update_interval,
            encoder_factory=VectorEncoderFactory(hidden_units=list(config.fqe_hidden_units)),
            reward_scaler=MultiplyRewardScaler(reward_scale),
        ),
        device=select_device(config.device),
    )
    fqe.fit(dataset, n_steps=config.fqe_steps, n_steps_per_epoch=config.fqe_steps,
            logger_adapter=NoopAdapterFactory(), show_progress=False, save_interval=10**9)
    return fqe


@dataclass(frozen=True)
class StochasticTarget:
    """A target policy that draws its action, given by ``probs(observations) -> [n,
    n_actions]`` (e.g. a served export's ``LoadedPolicy.action_probs``).

    :func:`evaluate_policy` values it exactly: each logged action is weighted by its target
    probability, FQE's Bellman targets and doubly robust's control variate average over the
    distribution, and a replay draws the policy's actions with ``seed``.
    """

    probs: Callable[[np.ndarray], np.ndarray]
    seed: int = 0

    def action_probs(self, observations: np.ndarray) -> np.ndarray:
        return np.asarray(self.probs(observations), dtype=np.float64)

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """The most probable action (what the reports' action shares count)."""
        return self.action_probs(observations).argmax(axis=1)


def logged_data_for(
    arrays: DecisionArrays, target_actions: np.ndarray, q_logged: np.ndarray | None = None,
    v_target: np.ndarray | None = None, target_probs: np.ndarray | None = None,
) -> LoggedData:
    """Estimator input for a target policy at the logged states: a deterministic one's
    actions, or with ``target_probs`` (``[rows, n_actions]``) a stochastic one's
    probability of each logged action."""
    rows = np.arange(arrays.actions.shape[0])
    return LoggedData(
        episode=arrays.episode,
        step=arrays.step,
        reward=arrays.rewards.astype(np.float64),
        behavior_prob=arrays.behavior_prob,
        target_prob=(target_actions == arrays.actions).astype(np.float64)
        if target_probs is None else target_probs[rows, arrays.actions],
        q_logged=q_logged,
        v_target=v_target,
    )


def _model_values(q: np.ndarray, arrays: DecisionArrays, target: np.ndarray,
                  target_probs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(Q(s, logged action), V_target(s))`` of one Q matrix ``[rows, n_actions]``."""
    rows = np.arange(arrays.actions.shape[0])
    v = q[rows, target] if target_probs is None else (target_probs * q).sum(axis=1)
    return q[rows, arrays.actions], v


def next_rows(arrays: DecisionArrays) -> np.ndarray:
    """Row of the next decision of the same episode, ``-1`` at each episode's last row."""
    rows = arrays.episode.shape[0]
    same = np.r_[arrays.episode[1:] == arrays.episode[:-1], False]
    return np.where(same, np.arange(1, rows + 1), -1)


def student_t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` of Student's t with ``df`` degrees of freedom (exact, scipy's)."""
    from scipy import stats

    if df < 1:
        raise ValueError(f"df: expected at least 1, got {df}")
    return float(stats.t.ppf(p, df))


def t_interval(value: float, replicates: Any, alpha: float
               ) -> tuple[float, float, float, int] | None:
    """``(low, high, sd, k)``: ``value +- t(1 - alpha/2, k - 1) * sd`` of the ``k`` finite
    ``replicates`` (Student's t: refits are few); None with fewer than two."""
    finite = np.asarray(replicates, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.shape[0] < 2:
        return None
    sd = float(finite.std(ddof=1))
    half = student_t_quantile(1.0 - alpha / 2.0, finite.shape[0] - 1) * sd
    return value - half, value + half, sd, int(finite.shape[0])


def torch_fqe_device(requested: str) -> str:
    """The torch FQE backend's device for ``OPEConfig.device``: an explicit ``cuda``/``cuda:N``
    (refused where CUDA is not available), else the CPU; ``"auto"`` keeps the CPU, where its
    small batched networks were measured (a GPU's speed-up is measured with ``offline-rl bench
    --device cuda``, not assumed)."""
    if requested == "cpu" or requested == "auto":
        return "cpu"
    if not requested.startswith("cuda"):
        raise ValueError(f"device: expected auto, cpu or cuda[:N], got {requested!r}")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but CUDA is not available here")
    return requested


def refit_counts(arrays: DecisionArrays, config: OPEConfig) -> np.ndarray:
    """``[fqe_refits, n_episodes]`` episode counts of the FQE refits' bootstrap resamples.

    A function of the seed and the number of episodes only, so every policy evaluated on the
    same data with the same config is refitted on the same resamples: replicate ``k`` of two
    policies (and of the behaviour policy's on-policy value) can be paired. Empty (zero rows)
    when refits are off.
    """
    n_episodes = int(arrays.episode.max()) + 1
    if config.fqe_backend != "torch" or config.fqe_refits < 2 or n_episodes < 2 \
            or config.n_bootstrap < 2:
        return np.empty((0, n_episodes))
    rng = np.random.default_rng([config.seed, 7919])
    return np.concatenate(list(resample_counts(n_episodes, config.fqe_refits, rng)))


MIN_FOLD_EPISODES = 10
"""Fewest episodes per fold for cross-fitting; with fewer, the fits use every episode."""


def fold_of_episode(n_episodes: int, config: OPEConfig) -> np.ndarray | None:
    """``[n_episodes]`` cross-fitting fold of each episode (balanced, a function of the seed
    and the number of episodes only, so every policy evaluated on the same data has the same
    folds); None when cross-fitting is off or there are fewer than ``MIN_FOLD_EPISODES``
    episodes per fold."""
    folds = config.fqe_folds
    if folds < 2 or n_episodes < folds * MIN_FOLD_EPISODES:
        return None
    rng = np.random.default_rng([config.seed, 104_729])
    return rng.permutation(n_episodes) % folds


FQEFit = tuple[np.ndarray, np.ndarray, EvaluationDetails]
"""``(q [members, rows, n_actions], resample counts [members - 1, n_episodes], details)`` of
one policy's FQE (:func:`_torch_fqe_fits`): member 0 is the fit on all episodes, member
``k >= 1`` the refit on resample ``k - 1``."""


def _fqe_target(policy_actions: np.ndarray, n_actions: int,
                target_probs: np.ndarray | None) -> np.ndarray:
    """``[rows, n_actions]`` probabilities FQE backs up: ``target_probs``, else one-hot."""
    if target_probs is not None:
        return target_probs
    probs = np.zeros((policy_actions.shape[0], n_actions))
    probs[np.arange(policy_actions.shape[0]), policy_actions] = 1.0
    return probs


def _fqe_settings(config: OPEConfig) -> FQESettings:
    """``config``'s torch FQE settings."""
    from offline_rl.ope.fqe_torch import FQESettings

    return FQESettings(steps=config.fqe_steps, batch_size=config.fqe_batch_size,
                       learning_rate=config.fqe_learning_rate,
                       hidden_units=tuple(config.fqe_hidden_units), seed=config.seed,
                       device=torch_fqe_device(config.device))


@dataclass(frozen=True)
class _FQEMembers:
    """Which rows each member of a policy's FQE ensemble fits (:func:`_fqe_members`)."""

    members: np.ndarray
    """``[1 + refits, rows]`` row weights: all episodes, then each bootstrap resample."""
    counts: np.ndarray
    """``[refits, n_episodes]`` the resamples' episode counts."""
    row_fold: np.ndarray | None
    """Each row's cross-fitting fold (None: no cross-fitting)."""
    folds: int
    stacked: np.ndarray
    """``[folds * (1 + refits), rows]``: member ``(f, k)`` fits ``members[k]`` outside fold
    ``f``."""


def _fqe_members(arrays: DecisionArrays, config: OPEConfig) -> _FQEMembers:
    """The members every policy's FQE ensemble fits on ``arrays`` (a function of the data and
    ``config`` only, so every policy gets the same)."""
    rows = arrays.actions.shape[0]
    weights = [np.ones((1, rows))]
    counts = refit_counts(arrays, config)
    if counts.shape[0]:
        weights.append(counts[:, arrays.episode])
    members = np.concatenate(weights)
    fold = fold_of_episode(int(arrays.episode.max()) + 1, config)
    folds = 1 if fold is None else config.fqe_folds
    row_fold = None if fold is None else fold[arrays.episode]
    if row_fold is not None:  # member (f, k): fit k on the episodes outside fold f
        stacked = np.concatenate([members * (row_fold != f) for f in range(folds)])
        # a resample may hold no episode outside a fold: that member fits the fold's
        # complement in the full data instead (never its own fold's rows)
        empty = stacked.sum(axis=1) <= 0
        if empty.any():
            outside = np.concatenate([np.broadcast_to((row_fold != f).astype(np.float64),
                                                      members.shape) for f in range(folds)])
            stacked[empty] = outside[empty]
    else:
        stacked = members
    return _FQEMembers(members, counts, row_fold, folds, stacked)


def _fit_policies(probs: list[np.ndarray], arrays: DecisionArrays, config: OPEConfig,
                  members: _FQEMembers) -> FQEPolicies:
    from offline_rl.ope.fqe_torch import fit_fqe_policies

    return fit_fqe_policies(arrays.observations, arrays.actions,
                            arrays.rewards.astype(np.float64), next_rows(arrays), probs,
                            members.stacked, gamma=config.gamma,
                            horizon=int(arrays.step.max()) + 1, settings=_fqe_settings(config))


def _torch_fqe_fits(probs: list[np.ndarray], arrays: DecisionArrays, config: OPEConfig
                    ) -> Callable[[int], FQEFit]:
    """FQE of several policies (their ``[rows, n_actions]`` target probabilities) trained in
    one batched network; returns a function giving policy ``p``'s fit, exactly the fit of
    that policy alone (``fit_fqe_policies``). Each call runs that
    policy's final pass over the rows, so only one policy's values are held at a time."""
    m = _fqe_members(arrays, config)
    members, counts, row_fold, folds = m.members, m.counts, m.row_fold, m.folds
    fitted = _fit_policies(probs, arrays, config, m)

    def fit_of(p: int) -> FQEFit:
        fit = fitted.result(p)
        q_all = fit.q_all
        if row_fold is not None:  # each row's values from the fits that left its fold out
            m = members.shape[0]
            q_all = np.empty((m, *fit.q_all.shape[1:]))
            for f in range(folds):
                rows_f = row_fold == f
                q_all[:, rows_f] = fit.q_all[f * m:(f + 1) * m][:, rows_f]
        details: EvaluationDetails = {
            "fqe_backend": "torch", "fqe_iterations": fit.n_iterations,
            "fqe_bellman_mse_scaled": float(fit.final_loss[0]),
            "fqe_reward_scale": fit.reward_scale, "fqe_refits": int(counts.shape[0]),
            "fqe_folds": folds}
        return q_all, counts, details

    return fit_of


CLIPPED = ("dr", "sndr")
"""Estimators whose cumulative importance weights ``OPEConfig.model_max_weight`` clips."""


def _by_clip(names: list[str] | tuple[str, ...], config: OPEConfig
             ) -> list[tuple[list[str], float | None]]:
    """``names`` in groups sharing a weight clip: the unclipped ones, then ``CLIPPED``."""
    groups = [([n for n in names if n not in CLIPPED], None),
              ([n for n in names if n in CLIPPED], config.model_max_weight)]
    return [(subset, clip) for subset, clip in groups if subset]


def _estimate_all(data: LoggedData, config: OPEConfig) -> dict[str, Estimate]:
    """Every configured estimator, ``dr``/``sndr`` with clipped weights (shared resamples)."""
    out: dict[str, Estimate] = {}
    for subset, clip in _by_clip(config.estimators, config):
        out.update(estimate(data, subset, gamma=config.gamma, n_bootstrap=config.n_bootstrap,
                            alpha=config.alpha, seed=config.seed, max_weight=clip))
    return {n: out[n] for n in config.estimators if n in out}


def _refit_intervals(estimates: dict[str, Estimate], arrays: DecisionArrays,
                     target: np.ndarray, q: np.ndarray, counts: np.ndarray,
                     config: OPEConfig, target_probs: np.ndarray | None = None,
                     ) -> tuple[dict[str, Estimate], dict[str, list[float]]]:
    """Intervals of the model-based estimators from the FQE refits.

    Replicate ``k`` of an estimator is its value on resample ``k`` with the model refitted on
    that resample; the interval is ``value +- t(1 - alpha/2, K - 1) * sd`` of the ``K``
    replicates around the point estimate (Student's t: ``K`` is small). With bagging the
    point estimate uses the average model, whose error is smaller than one refit's, so the
    interval is on the wide side. Also returns the replicates per estimator (NaN kept), which
    the gate pairs with the incumbent's replicates on the same resamples.
    """
    names = [n for n in config.refit_estimators if n in estimates]
    if not names or counts.shape[0] < 2:
        return estimates, {}
    groups = _by_clip(names, config)
    kept: dict[str, list[float]] = {n: [] for subset, _ in groups for n in subset}
    for k in range(1, q.shape[0]):  # member k is the refit on resample k - 1
        data = logged_data_for(arrays, target, *_model_values(q[k], arrays, target,
                                                              target_probs), target_probs)
        for subset, clip in groups:
            values = estimate_on_counts(data, subset, counts[k - 1:k], gamma=config.gamma,
                                        max_weight=clip)[0]
            for name, v in zip(subset, values, strict=True):
                kept[name].append(float(v))
    out = dict(estimates)
    for name, replicates in kept.items():
        value = estimates[name].value
        interval = t_interval(value, replicates, config.alpha)
        low, high, sd = interval[:3] if interval else (math.nan, math.nan, math.nan)
        out[name] = Estimate(name, value, low, high, sd)
    return out, kept


def evaluate_policy(
    name: str, algo: Any, arrays: DecisionArrays, dataset: Any, config: OPEConfig,
    n_actions: int | None = None, replay: ReplayData | None = None,
) -> PolicyEvaluation:
    """Estimates the value of a deterministic policy from logged decisions.

    Args:
        name: Label of the policy in reports.
        algo: The policy: anything with ``predict(observations) -> actions`` (a trained d3rlpy
            algorithm, a loaded export, a rule); the d3rlpy FQE backend needs a d3rlpy
            discrete Q-learning algorithm.
        arrays: Logged decisions, sorted by episode and step.
        dataset: The same decisions as a d3rlpy ``MDPDataset`` (d3rlpy backend only; may be
            None with the torch backend).
        config: Estimators, bootstrap and FQE settings.
        n_actions: Size of the action set (default: one more than the largest logged or
            chosen action).
        replay: The evaluation data prepared for the domain's replay
            (:func:`offline_rl.ope.replay.prepare_replay`): adds the ``replay`` estimate, or,
            when the data cannot be replayed, records why (``extra["replay"]``).
    """
    return evaluate_target(name, algo, arrays, config, n_actions=n_actions, replay=replay,
                           dataset=dataset)


NO_FEATURES = "the logged decisions have no state features to fit a Q-model (FQE) on"
"""``extra["model"]`` of an evaluation without features: dm, dr and sndr are left out."""


def evaluate_target(
    name: str, algo: Any, arrays: DecisionArrays, config: OPEConfig, *,
    n_actions: int | None = None, replay: ReplayData | None = None, dataset: Any = None,
    behavior_probs_all: np.ndarray | None = None,
) -> PolicyEvaluation:
    """The evaluation core behind the nightly evaluation (:func:`evaluate_policy`) and
    ``offline-rl ope`` (:func:`offline_rl.ope.public.evaluate_logs`): the same estimators,
    intervals, refits, weight clipping and diagnostics for the same ``config`` and data.

    Arguments as :func:`evaluate_policy` (``algo`` may also be a :class:`StochasticTarget`),
    and:

    * ``arrays.observations`` with no columns (no state features): no FQE is fitted, the
      model-based estimators (dm, dr, sndr) are left out and ``extra["model"]`` is
      :data:`NO_FEATURES`; every other estimate is what it is with features.
    * ``behavior_probs_all``: ``[rows, n_actions]`` behaviour probabilities of every action
      (e.g. an estimated behaviour model); the overlap diagnostics then use the full target
      and behaviour distributions (see :func:`compute_diagnostics`). The estimates use
      ``arrays.behavior_prob`` either way.
    """
    return evaluate_targets([(name, algo)], arrays, config, n_actions=n_actions, replay=replay,
                            dataset=dataset, behavior_probs_all=behavior_probs_all)[0]


@dataclass(frozen=True)
class _Target:
    """A policy's choices at the logged states, checked."""

    name: str
    algo: Any
    target: np.ndarray
    target_probs: np.ndarray | None
    n_actions: int


def _target_of(name: str, algo: Any, arrays: DecisionArrays, config: OPEConfig,
               n_actions: int | None) -> _Target:
    """``algo``'s action (and, for a :class:`StochasticTarget`, its probabilities) at every
    logged state; ``ValueError`` naming ``name`` when they are not valid for the data."""
    target_probs: np.ndarray | None = None
    if isinstance(algo, StochasticTarget):
        if config.fqe_backend != "torch":
            raise ValueError(f"{name}: a stochastic target needs the torch FQE backend")
        target_probs = algo.action_probs(arrays.observations)
        n_actions = n_actions or (target_probs.shape[1] if target_probs.ndim == 2 else None)
        if target_probs.shape != (arrays.actions.shape[0], n_actions) or \
                not np.allclose(target_probs.sum(axis=1), 1.0, atol=1e-4) or \
                (target_probs < 0).any():
            raise ValueError(f"{name}: the target's probabilities must be a [rows, n_actions] "
                             f"distribution per row, got shape {list(target_probs.shape)}")
    target = np.asarray(algo.predict(arrays.observations)).reshape(-1).astype(np.int64)
    if target.shape[0] != arrays.actions.shape[0]:
        raise ValueError(f"{name}: predict returned {target.shape[0]} actions for "
                         f"{arrays.actions.shape[0]} observations")
    if (target < 0).any():
        raise ValueError(f"{name}: predict returned a negative action at row "
                         f"{int(np.flatnonzero(target < 0)[0])}")
    n_actions = n_actions or int(max(arrays.actions.max(), target.max())) + 1
    if target.max() >= n_actions:
        raise ValueError(f"{name}: predict returned action {int(target.max())} outside "
                         f"[0, {n_actions})")
    return _Target(name, algo, target, target_probs, n_actions)


def fitted_q_function(name: str, algo: Any, arrays: DecisionArrays, config: OPEConfig,
                      n_actions: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The Q-function the evaluation fits for ``algo`` on ``arrays`` (torch backend: its
    ensemble's member fitted on every episode, the same fit to the bit; with cross-fitting,
    the one that left fold 0 out) as a function of any observations: ``[n, features]`` ->
    ``[n, n_actions]`` in reward units. What a policy tuned on the evaluator's own model sees
    (the validation's ``fqe_greedy``)."""
    if config.fqe_backend != "torch":
        raise ValueError(f"{name}: the evaluation's Q-function needs the torch FQE backend")
    t = _target_of(name, algo, arrays, config, n_actions)
    fitted = _fit_policies([_fqe_target(t.target, t.n_actions, t.target_probs)], arrays,
                           config, _fqe_members(arrays, config))
    return fitted.q_function(0)


def evaluate_targets(
    policies: list[tuple[str, Any]], arrays: DecisionArrays, config: OPEConfig, *,
    n_actions: int | None = None, replay: ReplayData | None = None, dataset: Any = None,
    behavior_probs_all: np.ndarray | None = None,
) -> list[PolicyEvaluation]:
    """:func:`evaluate_target` of each ``(name, policy)`` on the same data, in order. With the
    torch backend the policies' FQE fits (those with the same number of actions) are trained
    in one batched network, which gives each policy exactly the fit it gets alone
    (:func:`offline_rl.ope.fqe_torch.fit_fqe_policies`) in about 60% of the time; their
    final passes and estimates then run one policy at a time."""
    targets = [_target_of(name, algo, arrays, config, n_actions) for name, algo in policies]
    fits: dict[int, Callable[[], FQEFit]] = {}
    if config.fqe_backend == "torch" and arrays.observations.ndim == 2 \
            and arrays.observations.shape[1] > 0:
        for width in sorted({t.n_actions for t in targets}):
            group = [i for i, t in enumerate(targets) if t.n_actions == width]
            fit_of = _torch_fqe_fits([_fqe_target(targets[i].target, width,
                                                  targets[i].target_probs) for i in group],
                                     arrays, config)
            fits.update({i: functools.partial(fit_of, p) for p, i in enumerate(group)})
    return [_evaluate(t, arrays, config, fits.get(i), replay=replay, dataset=dataset,
                      behavior_probs_all=behavior_probs_all) for i, t in enumerate(targets)]


def _evaluate(resolved: _Target, arrays: DecisionArrays, config: OPEConfig,
              torch_fit: Callable[[], FQEFit] | None, *, replay: ReplayData | None,
              dataset: Any, behavior_probs_all: np.ndarray | None) -> PolicyEvaluation:
    """One policy's evaluation, its torch FQE fit (if any) from ``torch_fit``."""
    name, algo, target = resolved.name, resolved.algo, resolved.target
    target_probs, n_actions = resolved.target_probs, resolved.n_actions
    q_all: np.ndarray | None = None
    counts = np.empty((0, 0))
    if arrays.observations.ndim != 2 or arrays.observations.shape[1] == 0:
        q_logged = v_target = None
        counts = refit_counts(arrays, config)  # the replay's replicates pair on these
        details: EvaluationDetails = {"model": NO_FEATURES}
    elif torch_fit is not None:
        q_all, counts, details = torch_fit()
        model = q_all.mean(axis=0) if config.fqe_bagging else q_all[0]
        details["fqe_bagged"] = bool(config.fqe_bagging and q_all.shape[0] > 1)
        q_logged, v_target = _model_values(model, arrays, target, target_probs)
    else:
        if dataset is None:
            raise ValueError("the d3rlpy FQE backend needs the logged decisions as an "
                             "MDPDataset (dataset=None given)")
        from offline_rl.algos.training import auto_reward_scale

        scale = config.fqe_reward_scale or auto_reward_scale(arrays.rewards)
        fqe = fit_fqe(algo, dataset, config, scale)
        q_logged = np.asarray(fqe.predict_value(arrays.observations, arrays.actions),
                              dtype=np.float64) / scale
        v_target = np.asarray(fqe.predict_value(arrays.observations, target),
                              dtype=np.float64) / scale
        details = {"fqe_backend": "d3rlpy", "fqe_reward_scale": scale}
    data = logged_data_for(arrays, target, q_logged, v_target, target_probs)
    estimates = _estimate_all(data, config)
    terms = {n: per_episode(data, n, gamma=config.gamma,
                            max_weight=config.model_max_weight if n in CLIPPED else None)
             for n in EPISODE_PAIRED if n in estimates}
    if q_all is not None and config.n_bootstrap >= 2:
        estimates, replicates = _refit_intervals(estimates, arrays, target, q_all, counts,
                                                 config, target_probs)
        if replicates:
            details["refit_replicates"] = {"alpha": config.alpha, "values": replicates}
    if replay is not None:
        estimates, details = _with_replay(algo, replay, counts, estimates, details, config)
    if behavior_probs_all is None:
        diagnostics = compute_diagnostics(data, logged_action=arrays.actions)
    else:
        full = target_probs if target_probs is not None else np.eye(n_actions)[target]
        diagnostics = compute_diagnostics(data, target_probs_all=full,
                                          behavior_probs_all=behavior_probs_all,
                                          logged_action=arrays.actions)

    def shares(actions: np.ndarray) -> list[float]:
        counts = np.bincount(actions, minlength=n_actions)
        return (counts / counts.sum()).round(4).tolist()

    return PolicyEvaluation(
        name=name,
        estimates=estimates,
        diagnostics=diagnostics,
        disagreement=estimator_disagreement(estimates),
        extra={"action_distribution": shares(target),
               "logged_action_distribution": shares(arrays.actions), **details},
        episode_terms=terms,
    )


def with_episode_gains(evaluations: list[PolicyEvaluation], incumbent: str,
                       incumbent_terms: dict[str, np.ndarray]) -> list[PolicyEvaluation]:
    """``evaluations`` with their gain over ``incumbent`` paired per episode recorded
    (``extra["episode_gains"][incumbent]``), for each estimator both sides have terms of on
    the same episodes; the incumbent's own evaluation (same name) is left as it is. For the
    behaviour policy valued on-policy, its terms are the episodes' observed returns."""
    out = []
    for ev in evaluations:
        gains: dict[str, EpisodeGain] = {}
        for name, mine in ev.episode_terms.items():
            theirs = incumbent_terms.get(name)
            if ev.name == incumbent or theirs is None or theirs.shape != mine.shape \
                    or mine.shape[0] < 2:
                continue
            diffs = mine - theirs
            gains[name] = {"gain": float(diffs.mean()),
                           "se": float(diffs.std(ddof=1) / np.sqrt(diffs.shape[0])),
                           "n": int(diffs.shape[0])}
        if gains:
            recorded = {**(ev.extra.get("episode_gains") or {}), incumbent: gains}
            ev = replace(ev, extra={**ev.extra, "episode_gains": recorded})
        out.append(ev)
    return out


def behavior_terms(arrays: DecisionArrays, config: OPEConfig) -> dict[str, np.ndarray]:
    """The behaviour policy's per-episode terms for :func:`with_episode_gains`: every
    ``EPISODE_PAIRED`` estimator of it, valued on-policy, is its episodes' observed returns."""
    returns = episode_returns(arrays.rewards, arrays.episode, gamma=config.gamma)
    return {name: np.asarray(returns, dtype=np.float64) for name in EPISODE_PAIRED}


def _with_replay(algo: Any, replay: ReplayData, counts: np.ndarray,
                 estimates: dict[str, Estimate], details: EvaluationDetails,
                 config: OPEConfig) -> tuple[dict[str, Estimate], EvaluationDetails]:
    """``estimates`` plus the ``replay`` estimate (its replicates on the FQE refits'
    resamples ``counts`` in ``details["refit_replicates"]``), or ``details["replay"]`` saying
    why there is none (the caller that prepared the replay reports that once)."""
    if not replay.available:
        return estimates, {**details, "replay": replay.reason}
    predict = algo.predict
    if isinstance(algo, StochasticTarget):  # the replay draws the policy's actions
        rng = np.random.default_rng([algo.seed, 4242])

        def predict(observations: np.ndarray) -> np.ndarray:
            n_rows: int = observations.shape[0]
            return draw(algo.action_probs(observations), rng.random(n_rows))

    returns = replay.replay.returns(replay.prepared, predict, gamma=config.gamma)
    est, replicates = replay_estimate(returns, counts, n_bootstrap=config.n_bootstrap,
                                      alpha=config.alpha, seed=config.seed)
    details = {**details, "replay": "ok"}
    if replicates:
        block = details.get("refit_replicates") or {"alpha": config.alpha, "values": {}}
        details["refit_replicates"] = {"alpha": block["alpha"],
                                       "values": {**block["values"], REPLAY: replicates}}
    return {**estimates, REPLAY: est}, details


def evaluate_behavior(arrays: DecisionArrays, config: OPEConfig) -> Estimate:
    """The logging policy's on-policy value: mean observed return per episode, with CI."""
    return on_policy_value(arrays.rewards.astype(np.float64), arrays.episode, gamma=config.gamma,
                           n_bootstrap=config.n_bootstrap, alpha=config.alpha, seed=config.seed)


def behavior_replicates(arrays: DecisionArrays, config: OPEConfig) -> list[float]:
    """The on-policy value on each FQE refit's resample (:func:`refit_counts`).

    Paired with a candidate's refit replicates, the difference of the two on one resample
    cancels the episodes' shared luck, which the gate's paired comparison relies on. Empty
    when refits are off.
    """
    counts = refit_counts(arrays, config)
    if not counts.shape[0]:
        return []
    returns = episode_returns(arrays.rewards, arrays.episode, gamma=config.gamma)
    return [float(v) for v in (counts @ returns) / counts.sum(axis=1)]
