"""The code location: every asset, check, resource, job and schedule of the pipeline.

DuckDB allows one writing process, so steps run in-process (one after another) by default.
"""

from __future__ import annotations

import dagster as dg

from assets.evaluation import recommendation_ope
from assets.ingestion import raw_assets
from assets.promotion import recommendation_export, recommendation_gate
from assets.training import recommendation_candidates
from assets.transitions import recommendation_transitions
from orchestration.jobs import ingest_job, nightly_job, transitions_job
from orchestration.resources import DataHome
from orchestration.schedules import nightly_schedule

defs = dg.Definitions(
    assets=[
        *raw_assets,
        recommendation_transitions,
        recommendation_candidates,
        recommendation_ope,
        recommendation_gate,
        recommendation_export,
    ],
    resources={"data_home": DataHome()},
    jobs=[nightly_job, ingest_job, transitions_job],
    schedules=[nightly_schedule],
    executor=dg.in_process_executor,
)
