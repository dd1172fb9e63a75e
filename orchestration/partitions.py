"""Daily partitions and the rolling training window."""

from __future__ import annotations

import datetime as dt
import warnings

import dagster as dg

FIRST_DAY = "2026-01-01"
daily = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, end_offset=1, timezone="UTC")
"""One partition per UTC day of logs, from FIRST_DAY to today."""

TRAINING_WINDOW_DAYS = 7
"""Days of transitions each nightly model is trained and evaluated on (ending at the partition)."""

training_window = dg.TimeWindowPartitionMapping(start_offset=-(TRAINING_WINDOW_DAYS - 1),
                                                end_offset=0)
with warnings.catch_warnings():  # the parameter is marked beta; we rely on its documented use
    warnings.simplefilter("ignore", category=dg.BetaWarning)
    session_days = dg.TimeWindowPartitionMapping(
        start_offset=-1, end_offset=1, allow_nonexistent_upstream_partitions=True
    )
"""A day's sessions: the day before tells which sessions began earlier, the day after holds the
ends of sessions that cross midnight."""


def partition_day(context: dg.AssetExecutionContext) -> dt.date:
    """The run's partition key as a date (keys are validated by the partitions definition)."""
    return dt.date.fromisoformat(context.partition_key)
