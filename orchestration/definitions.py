"""The code location: every asset, check, resource, job and schedule of the pipeline.

Assets are generated per decision domain (``offline_rl.domains``), so each domain has its own
group and lineage: raw tables -> transitions -> candidates -> OPE -> gate -> export.
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
    executor=dg.in_process_executor,
)
