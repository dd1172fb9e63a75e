"""Training offline candidates with d3rlpy: algorithm factories, device choice, persistence.

Each candidate is a name from ``ALGORITHMS`` mapped to a d3rlpy ``*Config`` built from one
shared ``TrainingConfig``. ``train_candidate`` seeds everything, builds the networks, applies
the domain's action mask (``offline_rl.algos.masking``), optionally copies the networks of an
earlier model (``offline_rl.algos.warm_start``), fits, and saves the d3rlpy model
(``model.d3``; exports are built from it) with its configs, seed, mask, warm-start source,
data window and learning curve (``training.json``).

The candidates (names are stable: they name model folders, OPE rows and registry entries):

============  ===========  ================================================================
name          algorithm    settings beyond ``TrainingConfig``
============  ===========  ================================================================
bc            DiscreteBC   behaviour cloning (the logged policy's most probable action)
bc_b0         DiscreteBC   ``beta = 0``: no logit penalty, so its probabilities estimate the
                           logging policy's (the validation's ``spibb`` behaviour model)
dqn           DQN          -
double_dqn    DoubleDQN    -
cql           DiscreteCQL  ``alpha = TrainingConfig.cql_alpha`` (0.5 by default)
cql_a0.1      DiscreteCQL  ``alpha = 0.1`` (less conservative)
cql_a2        DiscreteCQL  ``alpha = 2.0`` (more conservative)
bcq           DiscreteBCQ  ``action_flexibility = TrainingConfig.bcq_action_flexibility``
============  ===========  ================================================================

The CQL grid spans the conservative weight geometrically (/5, x4) around the default; the
penalty is compared with TD errors of rewards scaled by ``reward_scale``, so one grid serves
every domain. ``DEFAULT_CANDIDATES`` is what the nightly job trains for every domain;
``python -m offline_rl.algos.throughput`` measures each candidate's training speed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import d3rlpy
import numpy as np
import torch
from d3rlpy.algos.utility import (
    assert_action_space_with_dataset,
    build_scalers_with_transition_picker,
)
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.optimizers import AdamFactory
from d3rlpy.preprocessing import MultiplyRewardScaler

from offline_rl.algos.config import DEFAULT_CANDIDATES, TrainingConfig  # noqa: F401 (re-exported)
from offline_rl.algos.masking import apply_action_mask
from offline_rl.algos.record import FILE_NAME, CandidateRecord
from offline_rl.algos.sampling import TransitionArrays
from offline_rl.algos.warm_start import warm_start_from

log = logging.getLogger(__name__)


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


def _bc_b0(cfg: TrainingConfig) -> d3rlpy.base.LearnableConfig:
    # d3rlpy's default logit penalty (beta 0.5) flattens the cloned probabilities: on
    # near-deterministic cart logs (the logged action's probability 0.93) the bc candidate's
    # most likely action got a median 0.45, this model's 0.94: the logging policy's estimate
    return d3rlpy.algos.DiscreteBCConfig(
        batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
        encoder_factory=_encoder(cfg), optim_factory=AdamFactory(), beta=0.0,
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


CANDIDATE_OVERRIDES: dict[str, dict[str, Any]] = {
    "cql_a0.1": {"cql_alpha": 0.1},
    "cql_a2": {"cql_alpha": 2.0},
}
"""Candidate name -> the ``TrainingConfig`` fields it fixes (the grid's points)."""


def candidate_config(name: str, config: TrainingConfig) -> TrainingConfig:
    """``config`` with the fields candidate ``name`` fixes (unchanged for most candidates)."""
    overrides = CANDIDATE_OVERRIDES.get(name)
    return dataclasses.replace(config, **overrides) if overrides else config


def _fixed(name: str, factory: Callable[[TrainingConfig], d3rlpy.base.LearnableConfig]
           ) -> Callable[[TrainingConfig], d3rlpy.base.LearnableConfig]:
    def build(cfg: TrainingConfig) -> d3rlpy.base.LearnableConfig:
        return factory(candidate_config(name, cfg))

    build.__name__ = f"{factory.__name__}_{name}"
    return build


ALGORITHMS: dict[str, tuple[str, Callable[[TrainingConfig], d3rlpy.base.LearnableConfig]]] = {
    "bc": ("DiscreteBC", _bc),
    "bc_b0": ("DiscreteBC", _bc_b0),
    "dqn": ("DQN", _dqn),
    "double_dqn": ("DoubleDQN", _double_dqn),
    "cql": ("DiscreteCQL", _cql),
    "cql_a0.1": ("DiscreteCQL", _fixed("cql_a0.1", _cql)),
    "cql_a2": ("DiscreteCQL", _fixed("cql_a2", _cql)),
    "bcq": ("DiscreteBCQ", _bcq),
}
"""Candidate name -> (d3rlpy algorithm, config factory); see the module docstring."""

@dataclass(frozen=True)
class TrainedCandidate:
    """A trained candidate on disk and how it was made."""

    name: str
    algorithm: str
    directory: Path
    device: str
    seconds: float
    learning_curve: list[dict[str, float]] = field(default_factory=list)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Runs the block with ``threads`` torch intra-op threads (``None``: unchanged)."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"cpu_threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    d3rlpy.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def mask_indices_from_context(context: Mapping[str, Any] | None) -> list[int] | None:
    """Mask positions implied by a record's ``action_mask_feature`` and ``feature_schema``."""
    if not context or not context.get("action_mask_feature"):
        return None
    names = (context.get("feature_schema") or {}).get("names")
    if names is None:
        raise ValueError("action_mask_feature is given without feature_schema names")
    names = [str(n) for n in names]
    missing = [m for m in context["action_mask_feature"] if m not in names]
    if missing:
        raise ValueError(f"action mask features {missing} are not in the feature schema")
    return [names.index(m) for m in context["action_mask_feature"]]


def _resolve_mask(mask_indices: Sequence[int] | None,
                  context: Mapping[str, Any] | None) -> list[int] | None:
    implied = mask_indices_from_context(context)
    if mask_indices is None:
        return implied
    given = [int(i) for i in mask_indices]
    if implied is not None and implied != given:
        raise ValueError(f"mask_indices {given} disagree with the context's action_mask_feature "
                         f"(positions {implied})")
    return given


def _prepare(
    name: str,
    dataset: Any,
    config: TrainingConfig,
    *,
    mask_indices: Sequence[int] | None,
    init_from: Path | None,
    context: Mapping[str, Any] | None,
) -> tuple[Any, TrainingConfig, str, list[int] | None]:
    """Seeded, built (and masked, warm-started) algorithm; the resolved config and device."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    if config.n_steps < 1 or config.steps_per_epoch < 1:
        raise ValueError(f"n_steps ({config.n_steps}) and steps_per_epoch "
                         f"({config.steps_per_epoch}) must be at least 1")
    if config.cpu_threads is not None and config.cpu_threads < 1:
        raise ValueError(f"cpu_threads must be at least 1 or None, got {config.cpu_threads}")
    _, factory = ALGORITHMS[name]
    device = select_device(config.device)
    if config.reward_scale is None:
        config = dataclasses.replace(config, reward_scale=auto_reward_scale(_rewards(dataset)))
    config = candidate_config(name, config)
    mask = _resolve_mask(mask_indices, context)
    seed_everything(config.seed)
    algo = factory(config).create(device=device)
    # built here, not in d3rlpy's fitter, so the warm start and the mask apply from the first
    # update on
    build_scalers_with_transition_picker(algo, dataset)
    algo.build_with_dataset(dataset)
    if init_from is not None:
        warm_start_from(algo, Path(init_from), context)
    if mask is not None:
        apply_action_mask(algo, mask)
    return algo, config, device, mask


def build_candidate(
    name: str,
    dataset: Any,
    config: TrainingConfig,
    *,
    mask_indices: Sequence[int] | None = None,
    init_from: Path | None = None,
    context: Mapping[str, Any] | None = None,
) -> Any:
    """The d3rlpy algorithm ``train_candidate`` would fit, before its first update.

    The same seeding, networks, mask and warm start as ``train_candidate`` (see there for the
    arguments); nothing is fitted or saved.
    """
    return _prepare(name, dataset, config, mask_indices=mask_indices, init_from=init_from,
                    context=context)[0]


def train_candidate(
    name: str,
    dataset: Any,
    config: TrainingConfig,
    out_dir: Path,
    *,
    context: dict[str, Any] | None = None,
    progress: Callable[[str, int, dict[str, float]], None] | None = None,
    mask_indices: Sequence[int] | None = None,
    init_from: Path | None = None,
) -> TrainedCandidate:
    """Fits candidate ``name`` on ``dataset`` (an ``MDPDataset``) and saves it in ``out_dir``.

    Args:
        name: Key of ``ALGORITHMS``.
        dataset: d3rlpy ``MDPDataset``.
        config: Shared hyper-parameters, seed and device.
        out_dir: Directory to (re)create for this candidate.
        context: Extra facts saved with the model (data window, feature schema, ...). When it
            names ``action_mask_feature`` and ``feature_schema``, the mask is applied even
            without ``mask_indices`` (and must agree with them when both are given).
        progress: Called after each epoch with (name, step, metrics).
        mask_indices: Positions of the action-mask features in the observation (one per
            action, allowed where > 0; ``Domain.mask_indices``), honoured in training targets
            and greedy actions; None for an unmasked domain.
        init_from: A directory written by ``train_candidate`` for an algorithm of the same
            family and shapes: the networks start from its weights and train ``n_steps`` more.

    Raises:
        ValueError: Unknown name, bad mask indices, or a warm-start source of another family,
            shape, feature schema or action map.
    """
    algo, config, device, mask = _prepare(name, dataset, config, mask_indices=mask_indices,
                                          init_from=init_from, context=context)
    algorithm = ALGORITHMS[name][0]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curve: list[dict[str, float]] = []
    started = time.perf_counter()
    with torch_threads(config.cpu_threads if device == "cpu" else None):
        for step, metrics in fit_steps(algo, dataset, config.n_steps, config.steps_per_epoch,
                                       config.batch_size):
            point = {"epoch": float(len(curve) + 1), "step": float(step)}
            point.update({k: float(v) for k, v in metrics.items()})
            curve.append(point)
            if progress is not None:
                progress(name, step, metrics)
    seconds = time.perf_counter() - started
    save_candidate(algo, out_dir, name=name, config=config, device=device, seconds=seconds,
                   mask_indices=mask, init_from=init_from, learning_curve=curve,
                   context=context)
    log.info("trained %s (%s) on %s in %.1fs%s", name, algorithm, device, seconds,
             f", warm-started from {init_from}" if init_from is not None else "")
    return TrainedCandidate(name=name, algorithm=algorithm, directory=out_dir, device=device,
                            seconds=seconds, learning_curve=curve)


def save_candidate(
    algo: Any, out_dir: Path, *, name: str, config: TrainingConfig, device: str,
    seconds: float, mask_indices: Sequence[int] | None = None, init_from: Path | None = None,
    learning_curve: list[dict[str, float]] | None = None,
    context: dict[str, Any] | None = None,
) -> None:
    """Writes ``model.d3`` and ``training.json`` (how the model was made) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    algo.save(str(out_dir / "model.d3"))
    CandidateRecord.from_dict({
        "name": name,
        "algorithm": ALGORITHMS[name][0],
        "device": device,
        "seconds": seconds,
        "training_config": dataclasses.asdict(config),
        "d3rlpy_config": json.loads(algo.config.serialize()),
        "d3rlpy_version": d3rlpy.__version__,
        "torch_version": torch.__version__,
        "mask_indices": None if mask_indices is None else list(mask_indices),
        "warm_start": None if init_from is None else str(init_from),
        "learning_curve": learning_curve or [],
        **(context or {}),
    }, str(out_dir / FILE_NAME)).write(out_dir)


def fit_steps(algo: Any, dataset: Any, n_steps: int, steps_per_epoch: int,
              batch_size: int) -> Iterator[tuple[int, dict[str, float]]]:
    """Runs exactly ``n_steps`` d3rlpy updates of the built ``algo`` on ``dataset``.

    Yields ``(steps done, mean metrics)`` after every ``steps_per_epoch`` updates and after
    the last one. The updates are d3rlpy's (``algo.update``) on the mini-batches d3rlpy's
    fitter would draw from numpy's global generator (seeded by ``seed_everything``), but taken
    from flat arrays (``TransitionArrays``) instead of one transition at a time, and without
    the fitter's experiment logger (the fitter also expects to build the networks itself,
    whereas here they are built, masked and warm-started beforehand).
    """
    if algo.impl is None:
        raise ValueError("build the algorithm (build_with_dataset) before fitting it")
    if algo.need_returns_to_go:
        raise ValueError(f"{type(algo).__name__} needs returns-to-go, which the vectorised "
                         "sampler does not provide")
    assert_action_space_with_dataset(algo, dataset.dataset_info)
    transitions = TransitionArrays.from_dataset(dataset)
    done = 0
    while done < n_steps:
        chunk = min(steps_per_epoch, n_steps - done)
        sums: dict[str, float] = defaultdict(float)
        started = time.perf_counter()
        for _ in range(chunk):
            for key, value in algo.update(transitions.sample(batch_size)).items():
                sums[key] += float(value)
        done += chunk
        metrics = {key: value / chunk for key, value in sums.items()}
        metrics["time_step"] = (time.perf_counter() - started) / chunk
        yield done, metrics


def _rewards(dataset: Any) -> np.ndarray:
    return np.concatenate([np.asarray(e.rewards).reshape(-1) for e in dataset.episodes])


def load_candidate(directory: Path) -> Any:
    """The d3rlpy algorithm saved by ``train_candidate`` in ``directory``, on the CPU.

    The action mask recorded in ``training.json`` (``mask_indices``) is applied again, so
    ``predict`` honours it as it did in training.
    """
    path = Path(directory) / "model.d3"
    if not path.is_file():
        raise FileNotFoundError(f"no trained model at {path}")
    algo = d3rlpy.load_learnable(str(path), device="cpu")
    if CandidateRecord.exists(directory):
        record = CandidateRecord.read(directory)
        mask: Sequence[int] | None = record.mask_indices
        if mask is None:  # records written by other trainers
            mask = mask_indices_from_context(record.as_dict())
        if mask:
            apply_action_mask(algo, list(mask))
    return algo

