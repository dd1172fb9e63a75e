"""The code location: every asset, check, resource, job, schedule and sensor of the pipeline.

Assets are generated per decision domain (``offline_rl.domains``), so each domain has its own
group and lineage: raw tables -> transitions -> candidates -> OPE -> gate -> export.

Steps run in separate processes (Dagster's multiprocess executor), so the domains train and
evaluate in parallel. DuckDB admits one writing process at a time; ``Warehouse`` queues writers
on a file lock, so parallel steps never fail on the database lock. ``max_concurrent`` defaults
to the machine's cores and can be changed per run in the launchpad (``execution.config``).
"""

from __future__ import annotations

import dagster as dg

from assets.evaluation import ope_assets
from assets.ingestion import raw_assets
from assets.promotion import export_assets, gate_assets
from assets.training import candidates_assets
from assets.transitions import transitions_assets
from orchestration.jobs import ingest_job, nightly_job, transitions_job
from orchestration.resources import DataHome
from orchestration.schedules import nightly_schedule
from orchestration.sensors import landing_sensor, refresh_transitions_sensor

defs = dg.Definitions(
    assets=[
        *raw_assets,
        *transitions_assets,
        *candidates_assets,
        *ope_assets,
        *gate_assets,
        *export_assets,
    ],
    resources={"data_home": DataHome()},
    jobs=[nightly_job, ingest_job, transitions_job],
    schedules=[nightly_schedule],
    sensors=[landing_sensor, refresh_transitions_sensor],
    executor=dg.multiprocess_executor,
)


def nightly_job_def() -> dg.JobDefinition:
    """The resolved nightly job (``dg.reconstructable`` needs a module-level function)."""
    return defs.resolve_job_def("nightly")


def ingest_job_def() -> dg.JobDefinition:
    """The resolved ingestion job, for runs in other processes."""
    return defs.resolve_job_def("ingest")
