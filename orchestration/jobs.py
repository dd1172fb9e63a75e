"""Jobs: a night's data, the nightly stages, and ingestion and transitions alone.

A night is two jobs because its assets have two partitions definitions (days of logs and
nights, ``orchestration.partitions``) and a Dagster job runs one: ``nightly_data`` ingests a
day and builds its transitions; ``nightly`` then trains, evaluates, gates, exports and
monitors that night. The schedule starts ``nightly_data``; its success starts ``nightly``
(``orchestration.sensors.nightly_after_data_sensor``). Each job is partitioned like the assets
it selects; Dagster infers that from the selection.
"""

from __future__ import annotations

import dagster as dg

DATA_SELECTION = dg.AssetSelection.groups("ingestion") | dg.AssetSelection.tag(
    "stage", "transitions")
"""The assets partitioned by day of logs: the raw tables and the transitions."""

nightly_job = dg.define_asset_job(
    "nightly",
    selection=dg.AssetSelection.all() - DATA_SELECTION,
    description="Train, evaluate, gate, export and monitor one night, on the transitions "
                "`nightly_data` built (a successful `nightly_data` run starts it).",
    tags={"dagster/max_retries": 1},
)

nightly_data_job = dg.define_asset_job(
    "nightly_data",
    selection=DATA_SELECTION,
    description="A night's data: load the day's landing files into the raw tables and build "
                "its transitions; on success, `nightly` runs for the same day.",
    tags={"dagster/max_retries": 2},
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
