"""The benchmarks run end to end on tiny sizes and report every figure they promise."""

from __future__ import annotations

import json

import pytest

from offline_rl.bench import BenchConfig, flatten_for_json, format_table, run_benchmarks


@pytest.mark.slow
def test_tiny_benchmark_run_reports_every_benchmark(tmp_path):
    results = run_benchmarks(BenchConfig(sizes=(20_000,), train_steps=60, ope_transitions=5000,
                                         end_to_end=True, end_to_end_events=4000))
    assert results["errors"] == {}
    flat = flatten_for_json(results)
    for name in ("ingestion", "transitions", "training", "ope", "end_to_end"):
        figures = flat[name]
        assert figures["events"] > 0 and figures["project_s"] > 0
        assert figures["ratio"] > 0
    assert flat["end_to_end"]["peak_rss_mb"] > 0
    assert set(flat["end_to_end"]["stages_s"]) >= {"ingestion", "training", "evaluation"}
    table = format_table(results)
    assert "end_to_end" in table and "FAILED" not in table
    json.dumps(flat)  # serialisable as written by --json
