"""A tiny closed loop through Dagster: the shop serves what is exported, the nightly job
learns from it, the monitor and the loop's record check it against the truth."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from offline_rl.data.warehouse import Warehouse
from offline_rl.paths import EXPORTS_ENV, HOME_ENV, LANDING_ENV, DataPaths
from offline_rl.pipeline import OPE_CONFIG_FILE, candidates_dir
from orchestration.loop import LoopSettings, run_loop, summarise
from orchestration.partitions import FIRST_DAY_ENV, FIRST_NIGHT_ENV, LAST_DAY_ENV


def test_three_nights_of_cart(tmp_path, monkeypatch):
    home = tmp_path / "home"
    for name in (HOME_ENV, LANDING_ENV, EXPORTS_ENV, FIRST_DAY_ENV, LAST_DAY_ENV,
                 FIRST_NIGHT_ENV):
        monkeypatch.setenv(name, "")  # restored after the test; the loop sets what it needs
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    settings = LoopSettings(nights=3, domains=("cart",), warmup_days=8, events_per_day=3000,
                            n_steps=100, fqe_steps=100, fqe_refits=3, n_bootstrap=50,
                            truth_episodes=500, min_nights=1, device="cpu")
    lines: list[str] = []
    result = run_loop(DataPaths(home), settings, say=lines.append)
    nights = result["nights"]["cart"]
    assert [n["night"] for n in nights] == ["2026-10-08", "2026-10-09", "2026-10-10"]
    assert nights[0]["served"] == "shop_rule"
    # the first night's held-out window was logged by the shop's rule alone
    assert list(nights[0]["window_loggers"]) == ["shop_rule"]
    assert all(sum(n["window_loggers"].values()) > 0 for n in nights)
    assert len([line for line in lines if line.startswith("night ")]) == 3
    # what a night promoted serves the next one, and the logs name it
    raw = Warehouse(home / "warehouse.duckdb").read_partitions("raw_cart", dt.date(2026, 10, 9),
                                                                dt.date(2026, 10, 10))
    for before, after in zip(nights, nights[1:], strict=False):
        day = dt.date.fromisoformat(after["night"])
        # carts opened that day (later visits of older carts keep their first policy)
        offers = raw.filter((pl.col("event_type") == "offer") & (pl.col("visit") == 0)
                            & (pl.col("event_ts").dt.date() == day))
        assert offers.height
        if before["decision"]["promoted"]:
            assert after["served"] == before["decision"]["export_version"]
        assert set(offers["policy_version"].unique()) == {after["served"]}
    served_versions = {n["served"] for n in nights} - {"shop_rule"}
    for n in nights:
        assert n["shop_true"] > 0 and n["candidates"]
        if n["served"] == "shop_rule":
            assert n["served_true"] == n["shop_true"]
        else:  # an export serves with exploration; its promise is in its manifest
            assert n["promised"]["estimator"] == "dr" and n["promised"]["low"] is not None
    # the monitor ran every night and recorded a row
    monitor = Warehouse(home / "warehouse.duckdb").query("monitor/select_history",
                                                         domain="cart")
    assert monitor.height == 3
    # the loop's OPE settings reached the nightly evaluation
    ope = json.loads((candidates_dir(DataPaths(home), "cart", dt.date(2026, 10, 10))
                      / OPE_CONFIG_FILE).read_text())
    assert (ope["fqe_steps"], ope["fqe_refits"], ope["n_bootstrap"]) == (100, 3, 50)
    summary = result["summary"]["cart"]
    assert summary["nights"] == 3 and summary["promotions"] == sum(
        n["decision"]["promoted"] for n in nights)
    assert summary["cumulative_true"] == pytest.approx(sum(n["served_true"] for n in nights))
    assert summary["estimation_multi_logger_nights"]["nights"] == sum(
        len(n["window_loggers"]) > 1 for n in nights[1:])
    record = json.loads((home / "reports" / "loop.json").read_text())
    assert [t["night"] for t in record["night_seconds"]] == [n["night"] for n in nights]
    assert all(t["cpu"] > 0 for t in record["night_seconds"])
    # night 1 runs on the warm-up's logs; later nights serve, ingest, run the job, then record
    assert list(record["night_seconds"][0]["phases"]) == ["nightly_job", "truth_and_record"]
    for t in record["night_seconds"][1:]:
        assert list(t["phases"]) == ["simulate", "ingest", "nightly_job", "truth_and_record"]
        assert sum(t["phases"].values()) == pytest.approx(t["wall"], abs=0.3)
    promised = [n for n in nights if n["promised"]["low"] is not None]
    assert summary["promise_true_checks"] == len(promised)
    if promised:
        assert summary["promise_true_above_low"] == pytest.approx(
            sum(n["served_true"] >= n["promised"]["low"] for n in promised) / len(promised))
    assert record["summary"] == json.loads(json.dumps(result["summary"]))
    assert (home / "reports" / "loop.png").read_bytes()[:4] == b"\x89PNG"
    assert served_versions <= {n["decision"]["export_version"] for n in nights}


def test_the_cost_of_a_night_leaves_out_the_first():
    from orchestration.cli import night_cost

    first = {"night": "2026-10-10", "wall": 50.0, "cpu": 40.0,
             "phases": {"nightly_job": 45.0, "truth_and_record": 5.0}}
    later = [{"night": f"2026-10-1{i}", "wall": w, "cpu": c,
              "phases": {"simulate": s, "ingest": 2.0, "nightly_job": w - s - 3.0,
                         "truth_and_record": 1.0}}
             for i, (w, c, s) in enumerate([(30.0, 20.0, 4.0), (40.0, 24.0, 6.0)], start=1)]
    assert night_cost([first]) == {}
    assert night_cost([first, *later]) == {
        "nights": 2.0, "wall": 35.0, "cpu": 22.0, "simulate": 5.0, "ingest": 2.0,
        "nightly_job": 27.0, "truth_and_record": 1.0}


def test_summary_counts_bad_nights_and_their_repeats():
    def night(served_true, promoted=False, monitor=None):
        return {"served_true": served_true, "shop_true": 10.0,
                "decision": {"promoted": promoted}, "monitor": monitor or {},
                "candidates": {"a": {"true": 11.0, "estimate": 11.5},
                               "b": {"true": 9.0, "estimate": 8.0},
                               "c": {"true": 12.0, "estimate": 12.5}}}

    records = {"cart": [night(10.0), night(9.7, True), night(9.5), night(12.0, True),
                        night(12.0, monitor={"realized_value": 11.0, "promised_low": 10.5,
                                             "promised_high": 13.0})]}
    s = summarise(records)["cart"]
    assert s["bad_nights"] == 2 and s["bad_nights_followed_by_bad"] == 1
    assert s["cumulative_gain_over_shop"] == pytest.approx(3.2)
    assert s["share_of_hindsight_gain"] == pytest.approx(3.2 / (2.0 * 5))
    assert s["best_candidate_true"] == 12.0
    assert s["share_of_best_candidate_gain"] == pytest.approx(3.2 / (2.0 * 5))
    assert s["estimation_first_night"]["mean_rank_correlation"] == 1.0
    assert s["promise_coverage"] == 1.0 and s["promise_checks"] == 1


def test_nights_on_two_dask_workers(tmp_path, monkeypatch):
    """With workers, the nightly job's steps run in Dask worker processes; the loop's record
    is the same kind as in-process."""
    import os

    import dagster as dg

    home = tmp_path / "home"
    for name in (HOME_ENV, LANDING_ENV, EXPORTS_ENV, FIRST_DAY_ENV, LAST_DAY_ENV,
                 FIRST_NIGHT_ENV):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    settings = LoopSettings(nights=2, domains=("cart", "recommendation"), warmup_days=8,
                            events_per_day=2000, n_steps=50, fqe_steps=50, n_bootstrap=50,
                            truth_episodes=300, min_nights=1, device="cpu", workers=2)
    result = run_loop(DataPaths(home), settings, say=lambda _m: None)
    assert [len(result["nights"][d]) for d in ("cart", "recommendation")] == [2, 2]
    assert result["settings"]["workers"] == 2
    instance = dg.DagsterInstance.get()
    runs = instance.get_run_records(dg.RunsFilter(job_name="nightly_dask"))
    assert len(runs) == 2 and all(r.dagster_run.is_success for r in runs)
    pids = {e.dagster_event.pid for r in runs
            for e in instance.all_logs(r.dagster_run.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "STEP_SUCCESS"}
    assert pids and os.getpid() not in pids
    # night 2 built its day's transitions and rebuilt those of the days it completed (cart's
    # lookahead: 5 days), each run in a worker process
    first_night = min(r.create_timestamp for r in runs)
    rebuilt = [r for r in instance.get_run_records(dg.RunsFilter(job_name="transitions"))
               if r.create_timestamp > first_night]
    assert len(rebuilt) == 6 and all(r.dagster_run.is_success for r in rebuilt)
    rebuild_pids = {e.dagster_event.pid for r in rebuilt
                    for e in instance.all_logs(r.dagster_run.run_id)
                    if e.dagster_event and e.dagster_event.event_type_value == "STEP_SUCCESS"}
    assert rebuild_pids and os.getpid() not in rebuild_pids
