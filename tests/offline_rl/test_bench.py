"""The benchmarks run end to end on tiny sizes and report every figure they promise."""

from __future__ import annotations

import json

import pytest

from offline_rl.bench import flatten_for_json, format_table, run_benchmarks
from offline_rl.bench_config import BenchConfig


@pytest.mark.slow
def test_tiny_benchmark_run_reports_every_benchmark(tmp_path):
    results = run_benchmarks(BenchConfig(sizes=(20_000,), train_steps=60, ope_transitions=5000,
                                         end_to_end=True, end_to_end_events=4000,
                                         end_to_end_steps=60))
    assert results["errors"] == {}
    flat = flatten_for_json(results)
    assert flat["fqe"]["cpu"]["steps_per_s"] > 0
    for name in ("ingestion", "transitions", "training", "ope", "end_to_end"):
        figures = flat[name]
        assert figures["events"] > 0 and figures["project_s"] > 0
        assert figures["ratio"] > 0
    assert flat["end_to_end"]["peak_rss_mb"] > 0
    assert flat["end_to_end"]["workers"] >= 1
    assert list(flat["end_to_end"]["parts_s"]) == ["ingestion", *flat["end_to_end"]["domains"]]
    # the night's processes together hold at least what its largest one held
    assert flat["end_to_end"]["peak_rss_mb"] >= 0.9 * flat["end_to_end"]["process_peak_rss_mb"]
    assert set(flat["end_to_end"]["stages_s"]) >= {"ingestion", "monitor", "training",
                                                   "evaluation", "promotion", "export"}
    assert flat["end_to_end"]["settings"]["train_steps"] == 60
    peaks = flat["end_to_end"]["stages_peak_rss_mb"]
    assert set(peaks) == set(flat["end_to_end"]["stages_s"]) and min(peaks.values()) > 0
    table = format_table(results)
    assert "end_to_end" in table and "FAILED" not in table
    json.dumps(flat)  # serialisable as written by --json


def test_stage_peaks_see_the_memory_a_stage_holds():
    import time

    import numpy as np

    from offline_rl.bench import StagePeaks

    peaks = StagePeaks(interval=0.001)
    with peaks.during("small"):
        time.sleep(0.05)
    with peaks.during("big"):
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, every page written
        time.sleep(0.05)
        del block
    peaks.close()
    assert peaks.mib["big"] > peaks.mib["small"] + 150


def _hold(mib: int, seconds: float) -> None:
    import time

    import numpy as np

    block = np.ones(mib * 2**20 // 8)  # every page written
    time.sleep(seconds)
    del block


def test_stage_peaks_of_a_tree_add_up_its_processes():
    import concurrent.futures
    import multiprocessing as mp

    from offline_rl.bench import StagePeaks

    own, tree = StagePeaks(interval=0.005), StagePeaks(interval=0.005, tree=True)
    with own.during("workers"), tree.during("workers"), concurrent.futures.ProcessPoolExecutor(
            2, mp_context=mp.get_context("fork")) as pool:
        list(pool.map(_hold, [300, 300], [2.5, 2.5]))  # two processes, 300 MiB each, at once
    own.close()
    tree.close()
    assert tree.mib["workers"] > own.mib["workers"] + 500


def test_fqe_benchmark_times_the_nightly_ensemble_on_a_device():
    from offline_rl.bench import bench_fqe

    r = bench_fqe(steps=20, rows=2000)
    assert (r["device"], r["members"], r["steps"]) == ("cpu", 9, 20)
    assert r["steps_per_s"] == pytest.approx(20 / r["project_s"])
    table = format_table({"machine": {"cpus": 2, "python": "3.11", "torch": "x", "cuda": False,
                                      "platform": "p"}, "errors": {}, "fqe": {"cpu": r}})
    assert "fqe (cpu)" in table and "9 members" in table
