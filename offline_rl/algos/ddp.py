"""Data-parallel training of one candidate with d3rlpy's DDP, launched by ``torchrun``.

Every process loads the same training window and keeps the episodes whose index modulo the
world size is its rank; gradients are averaged across processes by PyTorch's
DistributedDataParallel (d3rlpy's ``enable_ddp``). Rank 0 saves the model and its
``training.json`` like ``train_candidate`` does, so evaluation, the gate and the export use it
unchanged.

CPU (gloo), two processes on one machine::

    torchrun --standalone --nproc_per_node 2 -m offline_rl.algos.ddp \\
        --home .data --domain recommendation --day 2026-10-07 --algorithm double_dqn \\
        --n-steps 2000 --out .data/models/ddp/double_dqn

GPUs (nccl), one process per GPU: ``--backend nccl`` and ``--nproc_per_node <gpus>``; each
process trains on ``cuda:<LOCAL_RANK>``. Across machines use torchrun's ``--nnodes``,
``--node_rank`` and ``--rdzv_endpoint`` as usual.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from offline_rl.argtypes import iso_date, nonnegative_int, positive_int
from offline_rl.data.arrays import DecisionArrays, to_mdp_dataset


def shard_episodes(arrays: DecisionArrays, rank: int, world_size: int) -> DecisionArrays:
    """The rows of the episodes whose index modulo ``world_size`` is ``rank``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside [0, {world_size})")
    return arrays.select(arrays.episode % world_size == rank)


def main(argv: list[str] | None = None) -> int:
    import d3rlpy
    import torch
    from d3rlpy.algos.utility import build_scalers_with_transition_picker

    from offline_rl.algos.masking import apply_action_mask
    from offline_rl.algos.training import (
        ALGORITHMS,
        TrainingConfig,
        auto_reward_scale,
        candidate_config,
        fit_steps,
        save_candidate,
        seed_everything,
    )
    from offline_rl.domains import get_domain
    from offline_rl.paths import DataPaths, resolve_home
    from offline_rl.pipeline import load_window, training_context

    p = argparse.ArgumentParser(prog="torchrun ... -m offline_rl.algos.ddp",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--home", help="data home (default $OFFLINE_RL_HOME or ./.data)")
    p.add_argument("--domain", default="recommendation")
    p.add_argument("--day", type=iso_date, required=True, help="last day of the window")
    p.add_argument("--window-days", type=positive_int, default=7)
    p.add_argument("--eval-fraction", type=float, default=0.3)
    p.add_argument("--settle-days", type=nonnegative_int, default=None,
                   help="days before --day where the held-out (never trained on) episodes "
                        "end (default: the domain's lookahead days)")
    p.add_argument("--algorithm", default="double_dqn", choices=sorted(ALGORITHMS))
    p.add_argument("--n-steps", type=positive_int, default=TrainingConfig.n_steps)
    p.add_argument("--batch-size", type=positive_int, default=TrainingConfig.batch_size,
                   help="per-process batch size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    p.add_argument("--out", type=Path, required=True, help="model directory (written by rank 0)")
    args = p.parse_args(argv)

    rank = d3rlpy.distributed.init_process_group(args.backend)
    world = torch.distributed.get_world_size()
    try:
        device = f"cuda:{os.environ.get('LOCAL_RANK', rank)}" if args.backend == "nccl" \
            else "cpu"
        domain = get_domain(args.domain)
        paths = DataPaths(resolve_home(args.home))
        window = load_window(paths, domain, args.day, args.window_days, args.eval_fraction,
                             args.seed, args.settle_days)
        config = TrainingConfig(n_steps=args.n_steps, batch_size=args.batch_size,
                                seed=args.seed + rank, device=device,
                                reward_scale=auto_reward_scale(window.train.rewards))
        shard = shard_episodes(window.train, rank, world)
        dataset = to_mdp_dataset(shard, domain.n_actions)
        config = candidate_config(args.algorithm, config)
        seed_everything(config.seed)
        algo = ALGORITHMS[args.algorithm][1](config).create(device=device, enable_ddp=True)
        build_scalers_with_transition_picker(algo, dataset)
        algo.build_with_dataset(dataset)  # DDP broadcasts rank 0's initial weights
        if domain.mask_indices:
            apply_action_mask(algo, domain.mask_indices)
        started = time.perf_counter()
        for _ in fit_steps(algo, dataset, config.n_steps, config.steps_per_epoch,
                           config.batch_size):
            pass
        seconds = time.perf_counter() - started
        torch.distributed.barrier()
        if rank == 0:
            context = training_context(domain, window, args.window_days, args.eval_fraction,
                                       args.seed).as_dict()
            context["distributed"] = {"backend": args.backend, "world_size": world,
                                      "episodes_per_rank": int(np.unique(shard.episode).size)}
            save_candidate(algo, args.out, name=args.algorithm, config=config, device=device,
                           seconds=seconds, mask_indices=domain.mask_indices, context=context)
            print(json.dumps({"world_size": world, "backend": args.backend,
                              "steps": config.n_steps, "seconds": round(seconds, 2),
                              "steps_per_s": round(config.n_steps / seconds, 1),
                              "out": str(args.out)}))
    finally:
        d3rlpy.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
