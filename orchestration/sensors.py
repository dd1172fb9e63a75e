"""The landing sensor: new or changed landing files start ingestion of their day."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import dagster as dg

from offline_rl.data.schemas import SOURCES
from orchestration.jobs import ingest_job, transitions_job
from orchestration.resources import DataHome

_DAY_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_SUFFIXES = (".parquet", ".csv", ".jsonl", ".csv.gz", ".jsonl.gz")


def landing_signatures(home: DataHome) -> dict[str, str]:
    """Per landing day, a digest of its files' names, sizes and modification times."""
    landing = home.paths().landing
    files: dict[str, list[str]] = {}
    for schema in SOURCES.values():
        root = landing / schema.name
        if not root.is_dir():
            continue
        for day_dir in root.iterdir():
            match = _DAY_DIR.match(day_dir.name)
            if not match or not day_dir.is_dir():
                continue
            try:
                dt.date.fromisoformat(match.group(1))
            except ValueError:
                continue
            for f in day_dir.iterdir():
                if f.is_file() and f.name.endswith(_SUFFIXES) and not f.name.startswith("."):
                    st = f.stat()
                    files.setdefault(match.group(1), []).append(
                        f"{schema.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return {day: hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]
            for day, names in files.items()}


@dg.sensor(job=ingest_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Starts ingestion of a day when its landing files appear or change.")
def landing_sensor(context: dg.SensorEvaluationContext, data_home: DataHome):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = landing_signatures(data_home)
    changed = sorted(day for day, sig in current.items() if seen.get(day) != sig)
    if not changed:
        return dg.SkipReason(f"no new landing files ({len(current)} day(s) seen)")
    context.update_cursor(json.dumps(current, sort_keys=True))
    return [dg.RunRequest(run_key=f"{day}:{current[day]}", partition_key=day) for day in changed]


def refresh_days(day: dt.date) -> list[dt.date]:
    """The transition partitions whose episodes can reach into raw partition ``day``."""
    from offline_rl.domains import all_domains

    reach = max(d.lookahead_days for d in all_domains())
    return [day - dt.timedelta(days=k) for k in range(reach, -1, -1)]


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job],
    request_job=transitions_job, default_status=dg.DefaultSensorStatus.STOPPED,
    description="After a day is ingested, rebuilds the transitions of the earlier days whose "
                "episodes it completes (multi-day carts, replenishment and pricing episodes), "
                "so the next nightly run trains on whole episodes.")
def refresh_transitions_sensor(context: dg.RunStatusSensorContext):
    key = context.dagster_run.tags.get("dagster/partition")
    if not key:
        return dg.SkipReason("the ingestion run was not for one partition")
    day = dt.date.fromisoformat(key)
    return [dg.RunRequest(run_key=f"{context.dagster_run.run_id}:{d}", partition_key=d.isoformat())
            for d in refresh_days(day)]
