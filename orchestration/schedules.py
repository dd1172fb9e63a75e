"""The nightly schedule: at 02:00 UTC, the night of the day that just ended (its data job;
``nightly`` follows when that succeeds, ``orchestration.sensors``)."""

from __future__ import annotations

import dagster as dg

from orchestration.jobs import nightly_data_job

nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightly_data_job, name="nightly_schedule", hour_of_day=2, minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
