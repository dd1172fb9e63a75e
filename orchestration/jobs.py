"""Jobs: the nightly pipeline and ingestion alone.

Each job is partitioned like the assets it selects (the daily partitions of
``orchestration.partitions``); Dagster infers that from the selection.
"""

from __future__ import annotations

import dagster as dg

nightly_job = dg.define_asset_job(
    "nightly",
    selection=dg.AssetSelection.all(),
    description="Ingest a day's logs, rebuild transitions, train, evaluate, gate and export.",
    tags={"dagster/max_retries": 1},
)

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Load a day's landing files into the raw tables (also for backfills).",
    tags={"dagster/max_retries": 2},
)

transitions_job = dg.define_asset_job(
    "transitions",
    selection=dg.AssetSelection.tag("stage", "transitions"),
    description="Rebuild a day's transitions from the raw tables (after late data arrives).",
    tags={"dagster/max_retries": 2},
)
