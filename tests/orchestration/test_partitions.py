"""Partition mappings: which transition days a nightly partition declares it reads."""

from __future__ import annotations

import dagster as dg

from orchestration.partitions import (
    TRAINING_WINDOW_DAYS,
    daily,
    days_outside_training_window,
    training_window,
)


def _upstream(mapping: dg.TimeWindowPartitionMapping, key: str) -> list[str]:
    subset = daily.empty_subset().with_partition_keys([key])
    result = mapping.get_upstream_mapped_partitions_result_for_partitions(
        subset, daily, daily)
    return sorted(result.partitions_subset.get_partition_keys())


def test_training_window_declares_the_training_and_the_settled_evaluation_days():
    keys = _upstream(training_window(6), "2026-03-20")
    # 7 start days of training plus 6 settle days before them: 03-08 .. 03-20
    assert keys[0] == "2026-03-08" and keys[-1] == "2026-03-20"
    assert len(keys) == TRAINING_WINDOW_DAYS + 6


def test_days_outside_the_declared_window_are_counted():
    assert days_outside_training_window(TRAINING_WINDOW_DAYS, 6, 6) == 0
    assert days_outside_training_window(TRAINING_WINDOW_DAYS, 0, 6) == 0  # fewer days: fine
    assert days_outside_training_window(TRAINING_WINDOW_DAYS, 9, 6) == 3
    assert days_outside_training_window(TRAINING_WINDOW_DAYS + 2, 6, 6) == 2
