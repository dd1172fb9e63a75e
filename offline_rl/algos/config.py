"""What the nightly job trains, and with which hyper-parameters: declared apart from the
trainer (``offline_rl.algos.training``), so reading the configuration imports neither torch
nor d3rlpy (the Dagster code location loads it for every run config)."""

from __future__ import annotations

from dataclasses import dataclass


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
        cql_alpha: Weight of the conservative penalty of the ``cql`` candidate (the grid's
            ``cql_a0.1`` and ``cql_a2`` fix their own).
        bcq_action_flexibility: DiscreteBCQ's threshold on the behaviour model's relative
            probability for an action to be considered.
        reward_scale: Multiplier applied to rewards in the training targets; ``None`` picks
            ``1 / p99(|reward|)`` from the data. d3rlpy's Q-functions use a Huber loss, which
            pulls Q towards the median when rewards are heavy-tailed (mostly 0, sometimes a
            large purchase margin); scaling keeps TD errors in the quadratic region.
        seed: Seed of numpy, torch and d3rlpy for this run.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda:N"``.
        cpu_threads: torch intra-op threads while training on the CPU (restored afterwards);
            ``None`` keeps torch's setting. One thread is fastest for these small networks:
            with two threads on a busy 2-core machine DoubleDQN ran 22x slower (18 vs 406
            steps/s, ``python -m offline_rl.algos.throughput --threads 2``).
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
    cpu_threads: int | None = 1


DEFAULT_CANDIDATES: tuple[str, ...] = ("bc", "double_dqn", "cql")
"""Trained by the nightly job for every domain: behaviour cloning, DoubleDQN and CQL."""
