"""The monitor: realized value on the served policy's own episodes against its promise and
its predecessor, the false-alarm rate of its tests, and the automatic rollback."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from offline_rl.data.warehouse import Warehouse
from offline_rl.domains import get_domain
from offline_rl.export.registry import current_version, publish
from offline_rl.monitor import MonitorConfig, episode_returns, monitor, monitor_history

CART = get_domain("cart")
DAY = dt.date(2026, 10, 20)


def _transitions(day: dt.date, policy: str | None, returns: np.ndarray) -> pl.DataFrame:
    """Two-step episodes whose returns are ``returns`` (reward on the last step)."""
    n = returns.shape[0]
    ids = [f"{day:%Y%m%d}-{policy}-{i}" for i in range(n)]
    return pl.DataFrame({
        "partition_date": [day] * (2 * n),
        "episode_id": ids + ids,
        "step": [0] * n + [1] * n,
        "policy_version": [policy] * (2 * n),
        "reward": np.r_[np.zeros(n), returns],
        "terminal": [False] * n + [True] * n,
    }, schema_overrides={"policy_version": pl.String})


def _load(paths, days: dict[dt.date, list[tuple[str | None, np.ndarray]]]) -> None:
    wh = Warehouse(paths.warehouse)
    for day, parts in days.items():
        frame = pl.concat([_transitions(day, p, r) for p, r in parts])
        wh.replace_partition(CART.transitions_table, frame, day=day)


def _publish(paths, tmp_path, promise: dict | None) -> str:
    policy = tmp_path / "policy.pt"
    policy.write_bytes(np.random.default_rng(len(str(promise))).bytes(64))
    manifest = {"domain": "cart"} | ({"promise": promise} if promise else {})
    return publish(paths.exports, "cart", policy, manifest).version


def _promise(value: float, low: float, high: float) -> dict:
    return {"estimator": "dr", "value": value, "low": low, "high": high, "stderr": 0.1}


def test_episode_returns_keep_whole_episodes_and_unknown_policies():
    frame = pl.concat([_transitions(DAY, "v0001", np.array([1.0, 2.0])),
                       _transitions(DAY, None, np.array([5.0]))])
    running = _transitions(DAY, "v0001", np.array([9.0])).with_columns(
        episode_id=pl.lit("cut"), terminal=pl.lit(False))
    out = episode_returns(pl.concat([frame, running])).sort("ret")
    assert out["ret"].to_list() == [1.0, 2.0, 5.0]
    assert sorted(out["policy"].to_list()) == ["unknown", "v0001", "v0001"]
    assert "cut" not in out["episode_id"].to_list()


def test_a_policy_below_its_promise_and_its_predecessor_is_flagged_and_rolled_back(
        paths, tmp_path):
    rng = np.random.default_rng(0)
    v1 = _publish(paths, tmp_path, _promise(10.0, 9.5, 10.5))
    v2 = _publish(paths, tmp_path, _promise(12.0, 11.0, 13.0))
    days = {DAY - dt.timedelta(days=k): [] for k in range(6)}
    for k, day in enumerate(sorted(days)):
        # v0001 served the first three days (worth 10), v0002 the last three (worth 8)
        days[day].append((v1, rng.normal(10.0, 2.0, 400)) if k < 3
                         else (v2, rng.normal(8.0, 2.0, 400)))
    _load(paths, days)
    config = MonitorConfig(settle_days=0, window_days=7, auto_rollback=True, min_nights=3)
    report = monitor(paths, CART, DAY, config)
    assert report.served.policy == v2 and report.served.nights == 3
    assert report.served.value == pytest.approx(8.0, abs=0.2)
    assert report.previous.policy == v1
    assert report.below_promise and report.p_below_promise < 1e-6
    assert report.below_previous and report.p_below_previous < 1e-6
    assert report.rolled_back_to == v1 and current_version(paths.exports / "cart") == v1
    assert any("ROLLED BACK" in r for r in report.reasons)
    row = monitor_history(paths, CART).row(0, named=True)
    assert row["served"] == v2 and row["rolled_back_to"] == v1 and row["below_promise"]
    assert row["promised_low"] == 11.0


def test_no_rollback_before_enough_nights_nor_to_the_shops_rule(paths, tmp_path):
    rng = np.random.default_rng(1)
    v1 = _publish(paths, tmp_path, _promise(12.0, 11.0, 13.0))
    _load(paths, {DAY - dt.timedelta(days=1): [("shop_rule", rng.normal(10.0, 2.0, 400))],
                  DAY: [(v1, rng.normal(8.0, 2.0, 400))]})
    config = MonitorConfig(settle_days=0, window_days=7, auto_rollback=True, min_nights=2)
    report = monitor(paths, CART, DAY, config)
    assert report.below_promise and report.below_previous and report.rolled_back_to is None
    assert any("1 start day(s) of evidence, 2 needed" in r for r in report.reasons)
    assert current_version(paths.exports / "cart") == v1
    report = monitor(paths, CART, DAY, MonitorConfig(settle_days=0, auto_rollback=True,
                                                      min_nights=1))
    assert report.rolled_back_to is None
    assert any("previous policy is not an export" in r for r in report.reasons)


def test_a_broken_promise_alone_alerts_but_rolls_nothing_back(paths, tmp_path):
    rng = np.random.default_rng(3)
    v1 = _publish(paths, tmp_path, _promise(10.0, 9.0, 11.0))
    v2 = _publish(paths, tmp_path, _promise(20.0, 18.0, 22.0))  # over-promised, still better
    _load(paths, {DAY - dt.timedelta(days=2): [(v1, rng.normal(10.0, 2.0, 400))],
                  DAY - dt.timedelta(days=1): [(v2, rng.normal(14.0, 2.0, 400))],
                  DAY: [(v2, rng.normal(14.0, 2.0, 400))]})
    config = MonitorConfig(settle_days=0, auto_rollback=True, min_nights=1)
    report = monitor(paths, CART, DAY, config)
    assert report.below_promise and not report.below_previous and not report.ok
    assert report.rolled_back_to is None and current_version(paths.exports / "cart") == v2
    assert any("a broken promise alone" in r for r in report.reasons)


def test_nothing_to_monitor_is_said_not_failed(paths):
    report = monitor(paths, CART, DAY, MonitorConfig(settle_days=0))
    assert report.ok and report.served is None
    assert "nothing to monitor yet" in report.reasons[0]


def test_false_alarm_rates_of_kept_promises():
    """A policy truly worth its promised lower bound raises the promise alarm in about
    alpha of the nights, and one as good as its predecessor the predecessor alarm (1,000
    simulated nights of 400 and 500 right-skewed episode returns, alpha = 5%)."""
    from offline_rl.monitor import p_below, p_below_other, realized

    rng = np.random.default_rng(2)
    promise_alarms = previous_alarms = 0
    for _ in range(1000):
        returns = pl.DataFrame({
            "policy": ["new"] * 400 + ["old"] * 500,
            "day": [DAY] * 900,
            "ret": np.r_[rng.gamma(2.0, 5.0, 400), rng.gamma(2.0, 5.0, 500)],  # both worth 10
        })
        new, old = realized(returns, "new", 0.05), realized(returns, "old", 0.05)
        promise_alarms += p_below(new, 10.0) < 0.05
        previous_alarms += p_below_other(new, old) < 0.05
    assert 0.03 <= promise_alarms / 1000 <= 0.075
    assert 0.03 <= previous_alarms / 1000 <= 0.075
