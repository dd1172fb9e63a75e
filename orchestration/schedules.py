"""The nightly schedule: at 02:00 UTC, run the pipeline for the day that just ended."""

from __future__ import annotations

import dagster as dg

from orchestration.jobs import nightly_job

nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightly_job, hour_of_day=2, minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
