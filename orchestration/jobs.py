"""Jobs: the nightly pipeline and ingestion alone."""

from __future__ import annotations

import dagster as dg

from orchestration.partitions import daily

nightly_job = dg.define_asset_job(
    "nightly",
    selection=dg.AssetSelection.all(),
    partitions_def=daily,
    description="Ingest a day's logs, rebuild transitions, train, evaluate, gate and export.",
    tags={"dagster/max_retries": 1},
)

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.groups("ingestion"),
    partitions_def=daily,
    description="Load a day's landing files into the raw tables (also for backfills).",
    tags={"dagster/max_retries": 2},
)

transitions_job = dg.define_asset_job(
    "transitions",
    selection=dg.AssetSelection.tag("stage", "transitions"),
    partitions_def=daily,
    description="Rebuild a day's transitions from the raw tables (after late data arrives).",
    tags={"dagster/max_retries": 2},
)
