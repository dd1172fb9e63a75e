"""Transfer to a new segment: warm-start from pooled segments, fine-tune on the few new days.

A shop opens a new category (or market) and has only a few days of logs for it. Three ways
to get a policy for it, each valued by the simulator on the new segment only:

* ``scratch``: train on the new segment's small data alone;
* ``pooled``: the model trained on the other segments' plentiful data, used as it is
  (zero-shot: the state features describe the segment, e.g. its elasticity and cost ratio);
* ``warm_start``: the pooled model fine-tuned on the new segment's small data
  (``train_candidate(..., init_from=...)``);
* ``plenty``: train on plenty of the new segment's data: what the segment is worth once it
  has history (the reference the others should approach).

The behaviour policy's true value on the segment is the baseline. Data come from behaviour
rollouts of the domain's simulator (``offline_rl.simulator.rollouts``), which are what the
logs of those episodes would rebuild to. ``offline-rl transfer`` runs it over several seeds
and prints the table.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offline_rl.algos.training import (
    TrainingConfig,
    auto_reward_scale,
    load_candidate,
    train_candidate,
)
from offline_rl.data.arrays import to_mdp_dataset
from offline_rl.shop import simulator_for
from offline_rl.simulator.base import true_value
from offline_rl.simulator.rollouts import behavior_rollouts
from offline_rl.simulator.world import CATEGORIES

VARIANTS = ("behavior", "scratch", "pooled", "warm_start", "plenty")


class SegmentSimulator:
    """A domain simulator whose new episodes all come from one segment.

    ``reset`` is replaced; everything else (observe, step, behaviour policy) is the wrapped
    simulator's, so the segment's dynamics are exactly the shop's.
    """

    def __init__(self, sim: Any, reset: Callable[[int, np.random.Generator], Any]) -> None:
        self._sim = sim
        self._reset = reset

    def reset(self, n: int, rng: np.random.Generator) -> Any:
        return self._reset(n, rng)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)


def pricing_category_split(scenario: str, category: int) -> tuple[SegmentSimulator,
                                                                   SegmentSimulator]:
    """(the new category's simulator, the other categories' simulator) for pricing."""
    sim = simulator_for("pricing", scenario)
    cat_of_sku = sim.world.catalogue.category_id[sim.pool.item]
    if not 0 <= category < len(CATEGORIES):
        raise ValueError(f"category must lie in [0, {len(CATEGORIES)}), got {category}")

    def segment(skus: np.ndarray) -> SegmentSimulator:
        if skus.size == 0:
            raise ValueError(f"no pricing SKU in category {category}")
        return SegmentSimulator(sim, lambda n, rng: sim.start_episodes(
            rng.choice(skus, n), rng.integers(0, 7, n), rng))

    return (segment(np.flatnonzero(cat_of_sku == category)),
            segment(np.flatnonzero(cat_of_sku != category)))


SPLITS: dict[str, Callable[[str, int], tuple[SegmentSimulator, SegmentSimulator]]] = {
    "pricing": pricing_category_split,
}
"""Domains whose simulator can be split into a new segment and the pooled rest."""


@dataclass(frozen=True)
class TransferConfig:
    """The transfer experiment.

    Attributes:
        domain: Decision domain (a key of ``SPLITS``).
        segment: The new segment (pricing: a category index into ``world.CATEGORIES``).
        scenario: Simulator scenario.
        algorithm: Candidate trained in every variant (a key of ``ALGORITHMS``).
        small_episodes: Episodes of the new segment's small data (its first few days).
        pool_episodes: Episodes of the other segments' data.
        plenty_episodes: Episodes of the new segment in the ``plenty`` reference.
        n_steps: Gradient steps of scratch, pooled and plenty training.
        finetune_steps: Gradient steps of the warm start's fine-tuning.
        truth_episodes: Simulator rollouts per true value.
        seeds: One full repetition (data, training, truth) per seed.
    """

    domain: str = "pricing"
    segment: int = 0
    scenario: str = "default"
    algorithm: str = "cql"
    small_episodes: int = 150
    pool_episodes: int = 6000
    plenty_episodes: int = 6000
    n_steps: int = 3000
    finetune_steps: int = 1000
    truth_episodes: int = 20_000
    seeds: tuple[int, ...] = (0, 1, 2)


def run_seed(cfg: TransferConfig, seed: int, workdir: Path,
             progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """True values of every variant for one seed."""
    say = progress or (lambda _m: None)
    if cfg.domain not in SPLITS:
        raise ValueError(f"transfer needs a segment split; available for: {', '.join(SPLITS)}")
    target, pool = SPLITS[cfg.domain](cfg.scenario, cfg.segment)
    small = behavior_rollouts(target, cfg.small_episodes, seed=10_000 + seed)
    pooled = behavior_rollouts(pool, cfg.pool_episodes, seed=20_000 + seed)
    plenty = behavior_rollouts(target, cfg.plenty_episodes, seed=30_000 + seed)
    n_actions = target.n_actions
    # one reward scale for every variant, so the warm start fine-tunes on the same scale
    scale = auto_reward_scale(pooled.rewards)
    base = TrainingConfig(n_steps=cfg.n_steps, seed=seed, device="cpu", reward_scale=scale)

    def fit(name: str, data: Any, steps: int, init_from: Path | None = None) -> Any:
        say(f"seed {seed}: training {name} ({steps} steps on {len(data.actions):,} decisions)")
        config = dataclasses.replace(base, n_steps=steps)
        train_candidate(cfg.algorithm, to_mdp_dataset(data, n_actions), config,
                        workdir / name, init_from=init_from)
        return load_candidate(workdir / name)

    def truth(policy: Any) -> float:
        return true_value(target, policy, episodes=cfg.truth_episodes, seed=seed).mean

    out = {"behavior": truth("behavior")}
    out["scratch"] = truth(fit("scratch", small, cfg.n_steps).predict)
    out["pooled"] = truth(fit("pooled", pooled, cfg.n_steps).predict)
    out["warm_start"] = truth(fit("warm_start", small, cfg.finetune_steps,
                                  init_from=workdir / "pooled").predict)
    out["plenty"] = truth(fit("plenty", plenty, cfg.n_steps).predict)
    return out


def run_transfer(cfg: TransferConfig, progress: Callable[[str], None] | None = None
                 ) -> dict[str, Any]:
    """Every seed's true values and their mean and standard deviation per variant."""
    per_seed = []
    for seed in cfg.seeds:
        with tempfile.TemporaryDirectory(prefix="transfer-") as tmp:
            per_seed.append({"seed": seed, **run_seed(cfg, seed, Path(tmp), progress)})
    summary = {}
    for v in VARIANTS:
        values = np.array([r[v] for r in per_seed])
        summary[v] = {"mean": float(values.mean()),
                      "std": float(values.std(ddof=1)) if values.size > 1 else 0.0}
    behavior = summary["behavior"]["mean"]
    for v in VARIANTS:
        summary[v]["uplift_vs_behavior"] = summary[v]["mean"] / behavior - 1.0
    return {"config": dataclasses.asdict(cfg), "per_seed": per_seed, "summary": summary}


def format_transfer(result: dict[str, Any]) -> str:
    cfg = result["config"]
    segment = CATEGORIES[cfg["segment"]] if cfg["domain"] == "pricing" else cfg["segment"]
    lines = [f"transfer to a new segment: {cfg['domain']} / {segment} "
             f"({cfg['algorithm']}, seeds {', '.join(map(str, cfg['seeds']))})",
             f"small data {cfg['small_episodes']} episodes; pooled {cfg['pool_episodes']}; "
             f"plenty {cfg['plenty_episodes']}; fine-tuning {cfg['finetune_steps']} steps", "",
             f"{'variant':<12} {'true value':>12} {'sd':>8} {'vs behaviour':>13}"]
    for v in VARIANTS:
        s = result["summary"][v]
        lines.append(f"{v:<12} {s['mean']:>12.3f} {s['std']:>8.3f} "
                     f"{s['uplift_vs_behavior']:>+13.1%}")
    return "\n".join(lines)


def main_transfer(cfg: TransferConfig, json_out: Path | None,
                  progress: Callable[[str], None] | None = None) -> int:
    result = run_transfer(cfg, progress)
    print(format_transfer(result))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        print(f"json: {json_out}")
    return 0
