"""The code location: every asset, check, resource, job, schedule and sensor of the pipeline.

Assets are generated per decision domain (``offline_rl.domains``), so each domain has its own
group and lineage: raw tables -> transitions -> candidates -> OPE -> gate -> export.

Steps run in separate processes (Dagster's multiprocess executor), so the domains train and
evaluate in parallel. DuckDB admits one writing process at a time; ``Warehouse`` queues writers
on a file lock, so parallel steps never fail on the database lock. ``max_concurrent`` defaults
to the machine's cores and can be changed per run in the launchpad (``execution.config``).

With the ``dask`` extra installed, the job ``nightly_dask`` runs the same selection as ``nightly``
with each step a task on a Dask cluster (``orchestration.dask_executor``): a local cluster by
default, or a running scheduler with ``execution.config.cluster.existing.address``.
"""

from __future__ import annotations

import contextlib
import io
from importlib.util import find_spec

import dagster as dg


def _import_gym_quietly() -> None:
    """Imports the retired ``gym`` package (d3rlpy imports it) with its import-time notice
    swallowed: ``gym`` prints a deprecation notice to stderr on first import, which nobody
    running this code location can act on (the project's own environments use gymnasium).
    After this, importing d3rlpy prints nothing, here and in every step process that loads
    this module. Only that one import's stderr is captured."""
    if find_spec("gym") is None:
        return
    with contextlib.redirect_stderr(io.StringIO()):
        import gym  # noqa: F401


_import_gym_quietly()

from assets.evaluation import ope_assets  # noqa: E402
from assets.ingestion import raw_assets  # noqa: E402
from assets.monitoring import monitor_assets  # noqa: E402
from assets.promotion import export_assets, gate_assets  # noqa: E402
from assets.training import candidates_assets  # noqa: E402
from assets.transitions import transitions_assets  # noqa: E402
from orchestration.jobs import (  # noqa: E402
    ingest_job,
    nightly_data_job,
    nightly_job,
    transitions_job,
)
from orchestration.resources import DataHome  # noqa: E402
from orchestration.schedules import nightly_schedule  # noqa: E402
from orchestration.sensors import (  # noqa: E402
    landing_sensor,
    nightly_after_data_sensor,
    refresh_transitions_sensor,
)

jobs = [nightly_data_job, nightly_job, ingest_job, transitions_job]
if find_spec("dagster_dask") is not None:  # the optional `dask` extra
    from orchestration.dask_executor import dask_executor

    jobs.append(dg.define_asset_job(
        "nightly_dask",
        selection=nightly_job.selection,
        description="The nightly job with each step a task on a Dask cluster.",
        tags=nightly_job.tags,
        executor_def=dask_executor,
    ))

defs = dg.Definitions(
    assets=[
        *raw_assets,
        *transitions_assets,
        *monitor_assets,
        *candidates_assets,
        *ope_assets,
        *gate_assets,
        *export_assets,
    ],
    resources={"data_home": DataHome()},
    jobs=jobs,
    schedules=[nightly_schedule],
    sensors=[landing_sensor, refresh_transitions_sensor, nightly_after_data_sensor],
    executor=dg.multiprocess_executor,
)


def nightly_dask_job_def() -> dg.JobDefinition:
    """The resolved nightly job on the Dask executor (needs the ``dask`` extra)."""
    return defs.resolve_job_def("nightly_dask")


def ingest_job_def() -> dg.JobDefinition:
    """The resolved ingestion job, for runs in other processes."""
    return defs.resolve_job_def("ingest")
