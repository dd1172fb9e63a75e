"""The landing sensor: new or changed landing files start ingestion of their day."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from offline_rl.data.readers import landing_format
from offline_rl.domains import landing_schemas
from offline_rl.paths import RemotePath
from orchestration.jobs import ingest_job, nightly_data_job, nightly_job, transitions_job
from orchestration.resources import DataHome

_DAY_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def _day(folder_name: str) -> str | None:
    """The day of a ``date=YYYY-MM-DD`` folder name (None for anything else)."""
    match = _DAY_DIR.match(folder_name)
    if not match:
        return None
    try:
        dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None
    return match.group(1)


def _landing_file(name: str) -> bool:
    return landing_format(name) is not None and not name.startswith(".")


def _local_files(root: Path) -> Iterator[tuple[str, str, str]]:
    """(day, file name, size and modification time) of a dataset's local landing files."""
    if not root.is_dir():
        return
    for day_dir in root.iterdir():
        day = _day(day_dir.name)
        if day is None or not day_dir.is_dir():
            continue
        for f in day_dir.iterdir():
            if f.is_file() and _landing_file(f.name):
                st = f.stat()
                yield day, f.name, f"{st.st_size}:{st.st_mtime_ns}"


_VERSION_KEYS = ("ETag", "etag", "md5Hash", "mtime", "LastModified", "updated", "created")
"""Fields of an fsspec listing that change when an object is replaced, by store."""


def _remote_files(root: RemotePath) -> Iterator[tuple[str, str, str]]:
    """The same from object storage: one recursive listing of the dataset's prefix."""
    for path, info in root.fs.find(root.path, maxdepth=2, detail=True).items():
        parts = str(path).removeprefix(root.path + "/").split("/")
        if len(parts) != 2 or info.get("type", "file") != "file":
            continue
        day = _day(parts[0])
        if day is not None and _landing_file(parts[1]):
            version = next((str(info[k]) for k in _VERSION_KEYS if info.get(k) is not None), "")
            yield day, parts[1], f"{info.get('size')}:{version}"


def landing_signatures(home: DataHome) -> dict[str, str]:
    """Per landing day, a digest of its files' names, sizes and modification times (on object
    storage: sizes and the store's version tag, e.g. the ETag)."""
    landing = home.paths().landing
    files: dict[str, list[str]] = {}
    for schema in landing_schemas().values():
        root = landing / schema.name
        listed = _remote_files(root) if isinstance(root, RemotePath) else _local_files(root)
        for day, name, stamp in listed:
            files.setdefault(day, []).append(f"{schema.name}/{name}:{stamp}")
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


def run_partition(context: dg.RunStatusSensorContext) -> str | None:
    """The partition key of the run a run-status sensor reacts to (None: not one partition)."""
    return context.dagster_run.tags.get("dagster/partition") or None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job],
    request_job=transitions_job, default_status=dg.DefaultSensorStatus.STOPPED,
    description="After a day is ingested, rebuilds the transitions of the earlier days whose "
                "episodes it completes (multi-day carts, replenishment and pricing episodes), "
                "so the next nightly run trains on whole episodes.")
def refresh_transitions_sensor(context: dg.RunStatusSensorContext):
    key = run_partition(context)
    if key is None:
        return dg.SkipReason("the ingestion run was not for one partition")
    day = dt.date.fromisoformat(key)
    return [dg.RunRequest(run_key=f"{context.dagster_run.run_id}:{d}", partition_key=d.isoformat())
            for d in refresh_days(day)]


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[nightly_data_job],
    request_job=nightly_job, default_status=dg.DefaultSensorStatus.RUNNING,
    description="The second half of a night: when `nightly_data` has ingested a day and built "
                "its transitions, runs `nightly` (train, evaluate, gate, export, monitor) for "
                "that day.")
def nightly_after_data_sensor(context: dg.RunStatusSensorContext):
    from orchestration.partitions import nights

    key = run_partition(context)
    if key is None:
        return dg.SkipReason("the nightly_data run was not for one partition")
    if not nights.has_partition_key(key):
        return dg.SkipReason(f"{key} is before the first night ({nights.start:%Y-%m-%d}) "
                             "or after the last")
    return dg.RunRequest(run_key=f"{context.dagster_run.run_id}:nightly", partition_key=key)
