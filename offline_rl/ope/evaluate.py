"""Evaluating candidate policies on logged decisions: FQE plus the estimator suite.

For each candidate: the target policy's action at every logged state, d3rlpy's discrete FQE
fitted to that policy (its Q-function gives the direct-method estimate and the control
variate of doubly robust), every estimator of ``offline_rl.ope.estimators`` with bootstrap
intervals, and the diagnostics. Values are undiscounted expected returns per episode
(``gamma = 1``), the same quantity the simulator's ``true_value`` measures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offline_rl.algos.training import auto_reward_scale, seed_everything, select_device
from offline_rl.data.arrays import DecisionArrays
from offline_rl.ope.diagnostics import Diagnostics, compute_diagnostics, estimator_disagreement
from offline_rl.ope.estimators import ESTIMATORS, Estimate, LoggedData, estimate, on_policy_value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OPEConfig:
    """How candidates are evaluated.

    Attributes:
        estimators: Estimators to compute (names of ``offline_rl.ope.estimators.ESTIMATORS``).
        gamma: Discount of the evaluated return (1.0: undiscounted return per episode).
        n_bootstrap: Bootstrap resamples (of episodes) for the intervals.
        alpha: Intervals are ``1 - alpha`` two-sided; the gate uses their lower ends.
        fqe_steps: Gradient steps of FQE per candidate.
        fqe_learning_rate: FQE's Adam learning rate.
        fqe_batch_size: FQE mini-batch size.
        fqe_hidden_units: FQE Q-network hidden layers.
        fqe_target_update_interval: Steps between FQE target-network syncs.
        fqe_reward_scale: Reward multiplier inside FQE (Huber loss, see ``TrainingConfig``);
            ``None`` picks ``1 / p99(|reward|)``. Q-values are scaled back before use.
        seed: Seed of FQE and of the bootstrap.
        device: ``auto``, ``cpu`` or ``cuda:N`` for FQE.
    """

    estimators: tuple[str, ...] = ESTIMATORS
    gamma: float = 1.0
    n_bootstrap: int = 500
    alpha: float = 0.05
    fqe_steps: int = 3000
    fqe_learning_rate: float = 3e-4
    fqe_batch_size: int = 256
    fqe_hidden_units: tuple[int, ...] = (128, 128)
    fqe_target_update_interval: int = 200
    fqe_reward_scale: float | None = None
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class PolicyEvaluation:
    """One policy's estimates and diagnostics on the evaluation data."""

    name: str
    estimates: dict[str, Estimate]
    diagnostics: Diagnostics
    disagreement: float
    extra: dict[str, Any] = field(default_factory=dict)


def fit_fqe(algo: Any, dataset: Any, config: OPEConfig, reward_scale: float = 1.0) -> Any:
    """d3rlpy ``DiscreteFQE`` of ``algo``'s greedy policy, fitted on ``dataset``.

    Its Q-values are in units of ``reward * reward_scale``.
    """
    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.preprocessing import MultiplyRewardScaler

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


def logged_data_for(
    arrays: DecisionArrays, target_actions: np.ndarray, q_logged: np.ndarray | None = None,
    v_target: np.ndarray | None = None,
) -> LoggedData:
    """Estimator input for a deterministic target policy's actions at the logged states."""
    return LoggedData(
        episode=arrays.episode,
        step=arrays.step,
        reward=arrays.rewards.astype(np.float64),
        behavior_prob=arrays.behavior_prob,
        target_prob=(target_actions == arrays.actions).astype(np.float64),
        q_logged=q_logged,
        v_target=v_target,
    )


def evaluate_policy(
    name: str, algo: Any, arrays: DecisionArrays, dataset: Any, config: OPEConfig
) -> PolicyEvaluation:
    """Estimates the value of ``algo``'s greedy policy from logged decisions.

    Args:
        name: Label of the policy in reports.
        algo: A trained d3rlpy discrete Q-learning algorithm (``predict`` gives its actions).
        arrays: Logged decisions, sorted by episode and step.
        dataset: The same decisions as a d3rlpy ``MDPDataset`` (for FQE).
        config: Estimators, bootstrap and FQE settings.
    """
    target = np.asarray(algo.predict(arrays.observations)).astype(np.int64)
    scale = config.fqe_reward_scale or auto_reward_scale(arrays.rewards)
    fqe = fit_fqe(algo, dataset, config, scale)
    q_logged = np.asarray(fqe.predict_value(arrays.observations, arrays.actions),
                          dtype=np.float64) / scale
    v_target = np.asarray(fqe.predict_value(arrays.observations, target), dtype=np.float64) / scale
    data = logged_data_for(arrays, target, q_logged, v_target)
    estimates = estimate(data, config.estimators, gamma=config.gamma,
                         n_bootstrap=config.n_bootstrap, alpha=config.alpha, seed=config.seed)
    diagnostics = compute_diagnostics(data, logged_action=arrays.actions)
    counts = np.bincount(target, minlength=int(arrays.actions.max()) + 1)
    return PolicyEvaluation(
        name=name,
        estimates=estimates,
        diagnostics=diagnostics,
        disagreement=estimator_disagreement(estimates),
        extra={"action_distribution": (counts / counts.sum()).round(4).tolist(),
               "fqe_reward_scale": scale},
    )


def evaluate_behavior(arrays: DecisionArrays, config: OPEConfig) -> Estimate:
    """The logging policy's on-policy value: mean observed return per episode, with CI."""
    return on_policy_value(arrays.rewards.astype(np.float64), arrays.episode, gamma=config.gamma,
                           n_bootstrap=config.n_bootstrap, alpha=config.alpha, seed=config.seed)
