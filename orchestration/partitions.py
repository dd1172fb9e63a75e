"""Daily partitions and the rolling training window."""

from __future__ import annotations

import datetime as dt

import dagster as dg

FIRST_DAY = "2026-01-01"
daily = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, end_offset=1, timezone="UTC")
"""One partition per UTC day of logs, from FIRST_DAY to today."""

TRAINING_WINDOW_DAYS = 7
"""Days of transitions each nightly model is trained and evaluated on (ending at the partition)."""

training_window = dg.TimeWindowPartitionMapping(start_offset=-(TRAINING_WINDOW_DAYS - 1),
                                                end_offset=0)
same_and_next_day = dg.TimeWindowPartitionMapping(
    start_offset=0, end_offset=1, allow_nonexistent_upstream_partitions=True
)
"""Sessions that start on a day may end after midnight: read the next day's raw events too."""


def partition_day(context: dg.AssetExecutionContext) -> dt.date:
    """The run's partition key as a date (keys are validated by the partitions definition)."""
    return dt.date.fromisoformat(context.partition_key)
