"""Training offline candidates with d3rlpy: algorithm factories, device choice, persistence.

Each candidate is a name from ``ALGORITHMS`` mapped to a d3rlpy ``*Config`` built from one
shared ``TrainingConfig``. ``train_candidate`` seeds everything, fits, and saves the d3rlpy
model (``model.d3``; exports are built from it) with its configs, seed, data window and
learning curve (``training.json``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import d3rlpy
import numpy as np
import torch
from d3rlpy.logging import NoopAdapterFactory
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.optimizers import AdamFactory
from d3rlpy.preprocessing import MultiplyRewardScaler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters shared by every candidate.

    Attributes:
        n_steps: Gradient steps per candidate.
        steps_per_epoch: Steps between learning-curve points.
        batch_size: Mini-batch size.
        learning_rate: Adam learning rate.
        gamma: Discount factor of the training targets.
        hidden_units: Widths of the MLP encoder's hidden layers.
        target_update_interval: Steps between target-network syncs (Q-learning algorithms).
        cql_alpha: Weight of the conservative penalty of DiscreteCQL.
        bcq_action_flexibility: DiscreteBCQ's threshold on the behaviour model's relative
            probability for an action to be considered.
        reward_scale: Multiplier applied to rewards in the training targets; ``None`` picks
            ``1 / p99(|reward|)`` from the data. d3rlpy's Q-functions use a Huber loss, which
            pulls Q towards the median when rewards are heavy-tailed (mostly 0, sometimes a
            large purchase margin); scaling keeps TD errors in the quadratic region.
        seed: Seed of numpy, torch and d3rlpy for this run.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda:N"``.
    """

    n_steps: int = 4000
    steps_per_epoch: int = 500
    batch_size: int = 256
    learning_rate: float = 3e-4
    gamma: float = 0.99
    hidden_units: tuple[int, ...] = (128, 128)
    target_update_interval: int = 500
    cql_alpha: float = 0.5
    bcq_action_flexibility: float = 0.3
    reward_scale: float | None = None
    seed: int = 0
    device: str = "auto"


def select_device(requested: str = "auto") -> str:
    """Resolves ``"auto"`` to ``"cuda:0"`` when CUDA is usable, else ``"cpu"``."""
    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but CUDA is not available here")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ValueError(f"unknown device {requested!r}; use auto, cpu or cuda:N")
    return requested


def auto_reward_scale(rewards: np.ndarray) -> float:
    """``1 / p99(|r|)`` over non-zero rewards (1.0 when every reward is zero)."""
    nonzero = np.abs(rewards[rewards != 0])
    if nonzero.size == 0:
        return 1.0
    return float(1.0 / max(np.quantile(nonzero, 0.99), 1e-8))


def _scaler(cfg: TrainingConfig) -> MultiplyRewardScaler | None:
    return MultiplyRewardScaler(cfg.reward_scale) if cfg.reward_scale else None


def _encoder(cfg: TrainingConfig) -> VectorEncoderFactory:
    return VectorEncoderFactory(hidden_units=list(cfg.hidden_units))


def _bc(cfg: TrainingConfig) -> d3rlpy.base.LearnableConfig:
    return d3rlpy.algos.DiscreteBCConfig(
        batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
        encoder_factory=_encoder(cfg), optim_factory=AdamFactory(),
    )


def _dqn(cfg: TrainingConfig) -> d3rlpy.base.LearnableConfig:
    return d3rlpy.algos.DQNConfig(
        batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, gamma=cfg.gamma,
        target_update_interval=cfg.target_update_interval, encoder_factory=_encoder(cfg),
        reward_scaler=_scaler(cfg),
    )


def _double_dqn(cfg: TrainingConfig) -> d3rlpy.base.LearnableConfig:
    return d3rlpy.algos.DoubleDQNConfig(
        batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, gamma=cfg.gamma,
        target_update_interval=cfg.target_update_interval, encoder_factory=_encoder(cfg),
        reward_scaler=_scaler(cfg),
    )


def _cql(cfg: TrainingConfig) -> d3rlpy.base.LearnableConfig:
    return d3rlpy.algos.DiscreteCQLConfig(
        batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, gamma=cfg.gamma,
        target_update_interval=cfg.target_update_interval, alpha=cfg.cql_alpha,
        encoder_factory=_encoder(cfg), reward_scaler=_scaler(cfg),
    )


def _bcq(cfg: TrainingConfig) -> d3rlpy.base.LearnableConfig:
    return d3rlpy.algos.DiscreteBCQConfig(
        batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, gamma=cfg.gamma,
        target_update_interval=cfg.target_update_interval,
        action_flexibility=cfg.bcq_action_flexibility, encoder_factory=_encoder(cfg),
        reward_scaler=_scaler(cfg),
    )


ALGORITHMS: dict[str, tuple[str, Callable[[TrainingConfig], d3rlpy.base.LearnableConfig]]] = {
    "bc": ("DiscreteBC", _bc),
    "dqn": ("DQN", _dqn),
    "double_dqn": ("DoubleDQN", _double_dqn),
    "cql": ("DiscreteCQL", _cql),
    "bcq": ("DiscreteBCQ", _bcq),
}
"""Candidate name -> (d3rlpy algorithm, config factory)."""

DEFAULT_CANDIDATES: tuple[str, ...] = ("bc", "double_dqn", "cql")


@dataclass(frozen=True)
class TrainedCandidate:
    """A trained candidate on disk and how it was made."""

    name: str
    algorithm: str
    directory: Path
    device: str
    seconds: float
    learning_curve: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    d3rlpy.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_candidate(
    name: str,
    dataset: Any,
    config: TrainingConfig,
    out_dir: Path,
    *,
    context: dict[str, Any] | None = None,
    progress: Callable[[str, int, dict[str, float]], None] | None = None,
) -> TrainedCandidate:
    """Fits candidate ``name`` on ``dataset`` (an ``MDPDataset``) and saves it in ``out_dir``.

    Args:
        name: Key of ``ALGORITHMS``.
        dataset: d3rlpy ``MDPDataset``.
        config: Shared hyper-parameters, seed and device.
        out_dir: Directory to (re)create for this candidate.
        context: Extra facts saved with the model (data window, feature schema, ...).
        progress: Called after each epoch with (name, step, metrics).
    """
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    algorithm, factory = ALGORITHMS[name]
    device = select_device(config.device)
    if config.reward_scale is None:
        config = dataclasses.replace(config, reward_scale=auto_reward_scale(_rewards(dataset)))
    seed_everything(config.seed)
    algo = factory(config).create(device=device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curve: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch, metrics in algo.fitter(
        dataset,
        n_steps=config.n_steps,
        # d3rlpy runs n_steps // n_steps_per_epoch epochs: never zero
        n_steps_per_epoch=min(config.steps_per_epoch, config.n_steps),
        logger_adapter=NoopAdapterFactory(),
        show_progress=False,
        save_interval=10**9,
    ):
        point = {"epoch": float(epoch), "step": float(epoch * config.steps_per_epoch)}
        point.update({k: float(v) for k, v in metrics.items()})
        curve.append(point)
        if progress is not None:
            progress(name, int(point["step"]), metrics)
    seconds = time.perf_counter() - started
    algo.save(str(out_dir / "model.d3"))
    record = {
        "name": name,
        "algorithm": algorithm,
        "device": device,
        "seconds": seconds,
        "training_config": dataclasses.asdict(config),
        "d3rlpy_config": json.loads(algo.config.serialize()),
        "d3rlpy_version": d3rlpy.__version__,
        "torch_version": torch.__version__,
        "learning_curve": curve,
        **(context or {}),
    }
    (out_dir / "training.json").write_text(json.dumps(record, indent=2, default=str))
    log.info("trained %s (%s) on %s in %.1fs", name, algorithm, device, seconds)
    return TrainedCandidate(name=name, algorithm=algorithm, directory=out_dir, device=device,
                            seconds=seconds, learning_curve=curve)


def _rewards(dataset: Any) -> np.ndarray:
    return np.concatenate([np.asarray(e.rewards).reshape(-1) for e in dataset.episodes])


def load_candidate(directory: Path) -> Any:
    """The d3rlpy algorithm saved by ``train_candidate`` in ``directory``."""
    path = Path(directory) / "model.d3"
    if not path.is_file():
        raise FileNotFoundError(f"no trained model at {path}")
    return d3rlpy.load_learnable(str(path), device="cpu")
