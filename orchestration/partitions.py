"""Daily partitions and the partition mappings between stages."""

from __future__ import annotations

import datetime as dt
import warnings

import dagster as dg

from offline_rl.data.ingest import parse_partition_key

FIRST_DAY = "2026-01-01"
daily = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, end_offset=1, timezone="UTC")
"""One partition per UTC day of logs, from FIRST_DAY to today."""

TRAINING_WINDOW_DAYS = 7
"""Start days of the episodes each nightly model is trained on (ending at the partition) and
evaluated on (ending ``settle_days`` earlier: ``offline_rl.pipeline.load_window``)."""


def _days_around(before: int, after: int) -> dg.TimeWindowPartitionMapping:
    """``before`` days before the partition to ``after`` days after it, where they exist."""
    with warnings.catch_warnings():  # the parameter is marked beta; we rely on its documented use
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=-before, end_offset=after,
            allow_nonexistent_upstream_partitions=True,
        )


def training_window(settle_days: int) -> dg.TimeWindowPartitionMapping:
    """The transition partitions a nightly partition's training and evaluation read: the
    training window and the evaluation window ``settle_days`` before it."""
    return _days_around(TRAINING_WINDOW_DAYS - 1 + settle_days, 0)


def days_outside_training_window(window_days: int, settle_days: int, lookahead_days: int
                                  ) -> int:
    """How many days before :func:`training_window` (``lookahead_days``) covers a run with
    these ``window_days`` and ``settle_days`` reads: the lineage does not show those days, so
    changes to them do not mark the candidates stale (0: everything read is declared)."""
    reads = window_days - 1 + settle_days
    declared = TRAINING_WINDOW_DAYS - 1 + lookahead_days
    return max(reads - declared, 0)


def raw_days(lookback: int, lookahead: int) -> dg.TimeWindowPartitionMapping:
    """The raw partitions a day's transitions read: ``lookback`` days before (to recognise
    episodes that began earlier) to ``lookahead`` days after (the ends of episodes that cross
    midnight or last several days), where they exist."""
    return _days_around(lookback, lookahead)


session_days = raw_days(1, 1)
"""A day's sessions: the day before and the day after (recommendation)."""


def partition_day(context: dg.AssetExecutionContext) -> dt.date:
    """The run's partition key as a date; a malformed key is refused with a clear error."""
    return parse_partition_key(context.partition_key)
