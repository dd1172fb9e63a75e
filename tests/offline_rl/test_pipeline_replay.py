"""The inventory gate on the nightly path: transitions keep what the demand replay reads, the
OPE stage adds the replay estimate, and the gate decides on it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pytest

from offline_rl.algos.training import TrainingConfig, load_candidate
from offline_rl.data.schemas import SOURCES
from offline_rl.data.warehouse import Warehouse
from offline_rl.domains import get_domain
from offline_rl.ope.evaluate import OPEConfig
from offline_rl.ope.gate import GateConfig
from offline_rl.pipeline import (
    build_transitions_partition,
    evaluate_candidates,
    ingest_partition,
    load_window,
    promote,
    train_candidates,
)
from offline_rl.shop import write_landing

INVENTORY = get_domain("inventory")
START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(INVENTORY.lookahead_days + 2)]
LAST = DAYS[-1]


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    """Eight days of logs: the episodes of the first two days are complete on the last."""
    from offline_rl.paths import DataPaths

    paths = DataPaths(tmp_path_factory.mktemp("home"))
    write_landing(paths.home, days=len(DAYS), start=START, seed=2, events_per_day=12_000)
    for day in DAYS:
        for source in INVENTORY.sources:
            ingest_partition(paths, SOURCES[source], day)
    for day in DAYS:
        build_transitions_partition(paths, INVENTORY, day)
    config = TrainingConfig(n_steps=300, steps_per_epoch=300, batch_size=64, seed=0,
                            device="cpu")
    train_candidates(paths, INVENTORY, LAST, ["bc"], config, window_days=2, eval_fraction=0.5)
    ope = OPEConfig(fqe_steps=100, n_bootstrap=50, fqe_refits=4, fqe_hidden_units=(16,))
    evaluate_candidates(paths, INVENTORY, LAST, ope)
    return paths, ope


def test_the_ope_stage_adds_the_replay_estimate(nightly):
    paths, ope = nightly
    estimates = Warehouse(paths.warehouse).query("registry/select_estimates",
                                                 domain="inventory", day=LAST)
    replay = estimates.filter(estimator="replay")
    assert replay["policy"].to_list() == ["bc"]
    details = json.loads(replay["details"][0])
    assert details["replay"] == "ok"
    assert len(details["refit_replicates"]["values"]["replay"]) == ope.fqe_refits
    # the stored value is the candidate's mean replayed return on the held-out episodes
    window = load_window(paths, INVENTORY, LAST, 2, 0.5, 0)
    prepared = INVENTORY.replay.prepare(window.evaluation)
    policy = load_candidate(paths.models / "inventory" / str(LAST) / "bc")
    returns = INVENTORY.replay.returns(prepared, policy.predict)
    assert replay["value"][0] == pytest.approx(returns.mean())
    assert replay["low"][0] < replay["value"][0] < replay["high"][0]


def test_the_gate_decides_on_replay_and_records_it(nightly):
    paths, _ = nightly
    result = promote(paths, INVENTORY, LAST, GateConfig())
    assert result.decision.config.headline == "replay"
    row = Warehouse(paths.warehouse).query("registry/select_decision", domain="inventory",
                                           day=LAST)
    assert row["headline_estimator"][0] == "replay"
    assert any(r.startswith("bc: replay ") for r in json.loads(row["reasons"][0]))
    # a gate told to decide on doubly robust still can
    on_dr = promote(paths, INVENTORY, LAST, GateConfig(headline="dr"))
    assert on_dr.decision.config.headline == "dr"


def test_transitions_from_an_older_version_leave_replay_out_with_the_reason(nightly):
    paths, _ = nightly
    window = load_window(paths, INVENTORY, LAST, 2, 0.5, 0)
    old = dataclasses.replace(window.evaluation, extras={
        **window.evaluation.extras,
        "demand_7d_mean": np.full_like(window.evaluation.extras["demand_7d_mean"], np.nan)})
    from offline_rl.ope.replay import prepare_replay

    data = prepare_replay(INVENTORY.replay, old)
    assert not data.available and "rebuild the inventory transitions" in data.reason
