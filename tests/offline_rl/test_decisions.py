"""The policy registry through its one writer and reader (``offline_rl.decisions``)."""

import dataclasses
import datetime as dt

import pytest

from offline_rl.data.warehouse import Warehouse
from offline_rl.decisions import (
    RegistryDecision,
    promoted_before,
    read_decision,
    record_decision,
    set_export_version,
)

DAY = dt.date(2026, 10, 5)
KEPT = RegistryDecision(
    domain="ads", partition_date=DAY, decided_at=dt.datetime(2026, 10, 6, 1, tzinfo=dt.UTC),
    promoted=False, candidate=None, algorithm=None, incumbent="behavior",
    incumbent_value=100.0, headline_estimator="dr", headline_value=None, headline_low=None,
    headline_high=None, reasons=("kept incumbent behavior: no candidate passed the gate",),
    evidence={"candidates": [], "incumbent": {"name": "behavior", "value": 100.0}},
    model_dir=None)


def test_a_decision_round_trips_with_its_reasons_and_evidence(paths):
    wh = Warehouse(paths.warehouse)
    with pytest.raises(ValueError, match="no gate decision for ads on 2026-10-05"):
        read_decision(wh, "ads", DAY)  # before the table exists
    record_decision(wh, KEPT)
    assert read_decision(wh, "ads", DAY) == KEPT
    assert read_decision(wh, "ads", DAY).reason.startswith("kept incumbent")
    promoted = dataclasses.replace(KEPT, promoted=True, candidate="cql",
                                   algorithm="DiscreteCQL", headline_value=120.0,
                                   headline_low=110.0, headline_high=130.0,
                                   reasons=("promoted cql",), model_dir="/m/ads/cql")
    record_decision(wh, promoted)  # a rerun of the night replaces its decision
    assert read_decision(wh, "ads", DAY) == promoted
    assert wh.query("registry/select_decisions", domain="ads").height == 1


def test_promoted_before_follows_the_export_version(paths):
    wh = Warehouse(paths.warehouse)
    assert promoted_before(wh, "ads", DAY) is None  # no table yet
    first = dataclasses.replace(KEPT, promoted=True, candidate="bc", model_dir="/m/1")
    second = dataclasses.replace(first, partition_date=DAY + dt.timedelta(days=1),
                                 candidate="cql", model_dir="/m/2")
    for decision, version in ((first, "v0001"), (second, "v0002")):
        record_decision(wh, decision)
        set_export_version(wh, "ads", decision.partition_date, version)
    later = DAY + dt.timedelta(days=5)
    assert promoted_before(wh, "ads", later).candidate == "cql"
    assert promoted_before(wh, "ads", later, "v0001").export_version == "v0001"
    assert promoted_before(wh, "ads", later, "v0009") is None
    assert promoted_before(wh, "ads", DAY) is None  # decided on the day itself: not before
