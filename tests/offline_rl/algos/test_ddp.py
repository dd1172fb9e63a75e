"""Data-parallel training with torchrun: sharding, and a real two-process gloo run."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from offline_rl.algos.ddp import shard_episodes
from offline_rl.data.arrays import DecisionArrays


def _arrays(episodes: int) -> DecisionArrays:
    lengths = np.arange(episodes) % 3 + 1
    n = int(lengths.sum())
    episode = np.repeat(np.arange(episodes), lengths)
    return DecisionArrays(
        observations=np.arange(n * 2, dtype=np.float32).reshape(n, 2),
        actions=np.zeros(n, dtype=np.int64), rewards=np.ones(n, dtype=np.float32),
        terminals=np.zeros(n, dtype=np.float32), timeouts=np.zeros(n, dtype=np.float32),
        behavior_prob=np.full(n, 0.5), episode=episode,
        step=np.concatenate([np.arange(k) for k in lengths]))


def test_shards_partition_the_episodes_whole():
    arrays = _arrays(10)
    shards = [shard_episodes(arrays, r, 3) for r in range(3)]
    assert sum(len(s.actions) for s in shards) == len(arrays.actions)
    seen = [set(s.episode.tolist()) for s in shards]
    assert set().union(*seen) == set(range(10))
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2])
    for s in shards:  # an episode's rows stay together and in order
        for e in np.unique(s.episode):
            assert s.step[s.episode == e].tolist() == list(range((e % 3) + 1))
    with pytest.raises(ValueError, match="rank"):
        shard_episodes(arrays, 3, 3)


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    from offline_rl.algos.training import load_candidate
    from offline_rl.data.schemas import SOURCES
    from offline_rl.paths import DataPaths
    from offline_rl.pipeline import build_transitions_partition, ingest_partition
    from offline_rl.shop import write_landing

    day = dt.date(2026, 10, 1)
    paths = DataPaths(tmp_path / "home")
    write_landing(paths.home, days=1, start=day, seed=2, events_per_day=4000)
    ingest_partition(paths, SOURCES["clickstream"], day)
    build_transitions_partition(paths, "recommendation", day)
    out = tmp_path / "model"
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "offline_rl.algos.ddp",
         "--home", str(paths.home), "--day", day.isoformat(), "--window-days", "1",
         "--settle-days", "0",
         "--algorithm", "double_dqn", "--n-steps", "200", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    record = json.loads((out / "training.json").read_text())
    assert record["distributed"]["world_size"] == 2
    algo = load_candidate(out)
    actions = algo.predict(np.zeros((4, 19), dtype=np.float32))
    assert actions.shape == (4,) and ((actions >= 0) & (actions < 6)).all()
