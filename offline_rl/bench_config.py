"""What ``offline-rl bench`` runs (``offline_rl.bench`` runs it): declared apart from the
benchmarks, so the command line reads its defaults without importing polars or torch."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What ``offline-rl bench`` runs.

    Attributes:
        sizes: Clickstream events per simulated day, one full round per size.
        train_steps: Gradient steps of the training benchmark.
        ope_transitions: Logged transitions of the OPE benchmark.
        end_to_end: Also run the nightly stages of every domain for one day.
        end_to_end_events: Events per day of the end-to-end run.
        end_to_end_steps: Training and FQE gradient steps of the end-to-end run; 0: the
            nightly job's own (``TrainingConfig.n_steps`` and ``OPEConfig.fqe_steps``, with
            every other training, OPE and gate setting at the nightly default either way).
        end_to_end_workers: Processes the end-to-end run's domains share, side by side as
            the nightly job's multiprocess executor runs its steps; 0: one per core (that
            executor's default ``max_concurrent``). 1 runs the night in one process.
        fqe_steps: Gradient steps of the FQE benchmark.
        device: torch device of the training and FQE benchmarks. ``cpu``; or ``cuda`` /
            ``cuda:N`` to measure the GPU path: both are then run on the CPU too, with the
            same configurations, side by side.
    """

    sizes: tuple[int, ...] = (1_000_000,)
    train_steps: int = 2000
    ope_transitions: int = 1_000_000
    end_to_end: bool = False
    end_to_end_events: int = 1_000_000
    end_to_end_steps: int = 0
    end_to_end_workers: int = 0
    fqe_steps: int = 600
    device: str = "cpu"
