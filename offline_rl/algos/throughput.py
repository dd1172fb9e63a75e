"""Training throughput of every candidate: gradient steps per second on this machine.

    python -m offline_rl.algos.throughput [--domain inventory] [--steps 1000] [--threads 1]

Each candidate of ``ALGORITHMS`` is trained with ``train_candidate`` (the nightly job's code
path, with the domain's action mask) for ``--steps`` steps at the default batch size and
network, on random transitions with the domain's observation and action shapes (throughput
does not depend on the values). Prints seconds per 1,000 steps and steps per second, and the
1-minute load average before and after (other processes on the machine slow the figures down).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def synthetic_dataset(n_features: int, n_actions: int, n: int, seed: int,
                      mask_indices: list[int] | None = None) -> Any:
    """``n`` random transitions in episodes of 10 steps; masks allow the logged action."""
    import d3rlpy

    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, n_features)).astype(np.float32)
    actions = rng.integers(0, n_actions, size=n)
    if mask_indices:
        allowed = rng.integers(0, 2, size=(n, n_actions))
        allowed[np.arange(n), actions] = 1
        obs[:, mask_indices] = allowed
    rewards = rng.exponential(size=n).astype(np.float32) * (rng.random(n) < 0.1)
    terminals = (np.arange(n) % 10 == 9).astype(np.float32)
    return d3rlpy.dataset.MDPDataset(obs, actions, rewards, terminals,
                                     action_space=d3rlpy.ActionSpace.DISCRETE,
                                     action_size=n_actions)


def d3rlpy_fit_seconds(name: str, dataset: Any, config: Any) -> float:
    """Seconds of d3rlpy's own ``fit`` for the same candidate and steps (no mask)."""
    from d3rlpy.logging import NoopAdapterFactory

    from offline_rl.algos.training import ALGORITHMS, seed_everything

    seed_everything(config.seed)
    algo = ALGORITHMS[name][1](config).create(device="cpu")
    started = time.perf_counter()
    algo.fit(dataset, n_steps=config.n_steps, n_steps_per_epoch=config.n_steps,
             logger_adapter=NoopAdapterFactory(), show_progress=False, save_interval=10**9)
    return time.perf_counter() - started


def measure(domain_name: str, names: list[str], steps: int, transitions: int, seed: int,
            baseline: bool = False, threads: int = 1) -> list[dict[str, Any]]:
    """Seconds and steps per second of ``steps`` training steps for each candidate (and of
    d3rlpy's own ``fit`` with ``baseline``)."""
    from offline_rl.algos.training import TrainingConfig, train_candidate
    from offline_rl.domains import get_domain

    domain = get_domain(domain_name)
    mask = domain.mask_indices
    dataset = synthetic_dataset(len(domain.feature_names), domain.n_actions, transitions, seed,
                                mask)
    config = TrainingConfig(n_steps=steps, steps_per_epoch=steps, seed=seed, device="cpu",
                            reward_scale=1.0, cpu_threads=threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        for name in names:
            started = time.perf_counter()
            trained = train_candidate(name, dataset, config, Path(tmp) / name,
                                      mask_indices=mask)
            total = time.perf_counter() - started
            rows.append({"candidate": name, "algorithm": trained.algorithm,
                         "steps": steps, "fit_seconds": round(trained.seconds, 3),
                         "total_seconds": round(total, 3),
                         "seconds_per_1000_steps": round(trained.seconds * 1000 / steps, 3),
                         "steps_per_second": round(steps / trained.seconds, 1)})
            if baseline:
                fit = d3rlpy_fit_seconds(name, dataset, config)
                rows[-1]["d3rlpy_fit_steps_per_second"] = round(steps / fit, 1)
    return rows


def main(argv: list[str] | None = None) -> int:
    from offline_rl.algos.training import ALGORITHMS, TrainingConfig

    p = argparse.ArgumentParser(prog="python -m offline_rl.algos.throughput",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--domain", default="inventory", help="domain whose shapes and mask to use")
    p.add_argument("--candidates", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    p.add_argument("--steps", type=int, default=1000, help="training steps per candidate")
    p.add_argument("--transitions", type=int, default=50_000, help="size of the random dataset")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", action="store_true",
                   help="also time d3rlpy's own fit (without the mask) for each candidate")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    if args.steps < 1 or args.transitions < 10 or args.threads < 1:
        p.error("--steps, --threads must be >= 1 and --transitions >= 10")
    import structlog
    import torch

    # d3rlpy logs every epoch through structlog: keep warnings only
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = measure(args.domain, args.candidates, args.steps, args.transitions, args.seed,
                   args.baseline, args.threads)
    load_after = os.getloadavg()[0]
    print(f"domain {args.domain}, batch {TrainingConfig.batch_size}, hidden "
          f"{TrainingConfig.hidden_units}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
          f"load average {load_before:.1f} -> {load_after:.1f}")
    extra = f" {'d3rlpy fit steps / s':>21}" if args.baseline else ""
    print(f"{'candidate':<10} {'algorithm':<12} {'s / 1000 steps':>15} {'steps / s':>10}{extra}")
    for r in rows:
        line = (f"{r['candidate']:<10} {r['algorithm']:<12} {r['seconds_per_1000_steps']:>15.2f} "
                f"{r['steps_per_second']:>10.0f}")
        if args.baseline:
            line += f" {r['d3rlpy_fit_steps_per_second']:>21.0f}"
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps({"domain": args.domain, "threads": args.threads,
                                         "load_average": [load_before, load_after],
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
