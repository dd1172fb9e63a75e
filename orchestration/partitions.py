"""Daily partitions and the partition mappings between stages.

The partitions run from the shop's first day of logs, a setting read once, when the code
location loads (see :func:`load_calendar`): ``$OFFLINE_RL_FIRST_DAY``, else the data home's
``calendar.json`` (``offline-rl demo`` writes its simulated days there), else
:data:`DEFAULT_FIRST_DAY`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from offline_rl.data.ingest import parse_partition_key
from offline_rl.paths import resolve_home

FIRST_DAY_ENV = "OFFLINE_RL_FIRST_DAY"
LAST_DAY_ENV = "OFFLINE_RL_LAST_DAY"
CALENDAR_FILE = "calendar.json"
"""In the data home: ``{"first_day": "YYYY-MM-DD", "last_day": "YYYY-MM-DD" | null}``."""
DEFAULT_FIRST_DAY = dt.date(2024, 1, 1)
"""The first day when nothing is configured: early enough for two years of history."""


@dataclass(frozen=True)
class Calendar:
    """The days that are partitions: ``first_day`` through ``last_day`` (None: through the
    day in progress, so a shop's partitions grow by one every midnight UTC)."""

    first_day: dt.date
    last_day: dt.date | None = None
    source: str = "default"
    """Where the days came from, for messages."""

    def __post_init__(self) -> None:
        if self.last_day is not None and self.last_day < self.first_day:
            raise ValueError(f"the last day {self.last_day} is before the first day "
                             f"{self.first_day} ({self.source})")

    def covers(self, day: dt.date) -> bool:
        return self.first_day <= day and (self.last_day is None or day <= self.last_day)


def _day(value: object, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a day as YYYY-MM-DD, got {value!r}") from None


def load_calendar(environ: Mapping[str, str] | None = None,
                  home: str | os.PathLike[str] | None = None) -> Calendar:
    """The partition calendar: ``$OFFLINE_RL_FIRST_DAY`` (and the optional
    ``$OFFLINE_RL_LAST_DAY``) when set; else ``calendar.json`` in the data home (``home``, else
    ``$OFFLINE_RL_HOME``, else ``./.data``) when it exists; else :data:`DEFAULT_FIRST_DAY`
    with no last day. A malformed value raises ``ValueError`` naming the variable or file."""
    environ = os.environ if environ is None else environ
    first = environ.get(FIRST_DAY_ENV, "").strip()
    last = environ.get(LAST_DAY_ENV, "").strip()
    if first:
        return Calendar(_day(first, FIRST_DAY_ENV),
                        _day(last, LAST_DAY_ENV) if last else None, source=FIRST_DAY_ENV)
    if last:
        raise ValueError(f"{LAST_DAY_ENV} is set without {FIRST_DAY_ENV}")
    path = (Path(home) if home is not None
            else resolve_home(environ.get("OFFLINE_RL_HOME") or None)) / CALENDAR_FILE
    if not path.is_file():
        return Calendar(DEFAULT_FIRST_DAY)
    try:
        data = json.loads(path.read_text())
        first_day = _day(data["first_day"], f"first_day in {path}")
        last_day = data.get("last_day")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} must hold {{\"first_day\": \"YYYY-MM-DD\", \"last_day\": "
                         f"\"YYYY-MM-DD\" or null}} (set {FIRST_DAY_ENV} to override it): "
                         f"{exc}") from None
    return Calendar(first_day,
                    _day(last_day, f"last_day in {path}") if last_day else None,
                    source=str(path))


def write_calendar(home: str | os.PathLike[str], calendar: Calendar) -> Path:
    """Writes ``calendar`` to ``home/calendar.json``, where :func:`load_calendar` finds it."""
    path = Path(home) / CALENDAR_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "first_day": calendar.first_day.isoformat(),
        "last_day": calendar.last_day.isoformat() if calendar.last_day else None}) + "\n")
    return path


def daily_partitions(calendar: Calendar) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day of the calendar; without a last day, through the day in
    progress (its partition exists so that late-evening runs of it are possible)."""
    if calendar.last_day is None:
        return dg.DailyPartitionsDefinition(start_date=calendar.first_day.isoformat(),
                                            end_offset=1, timezone="UTC")
    return dg.DailyPartitionsDefinition(
        start_date=calendar.first_day.isoformat(),
        end_date=(calendar.last_day + dt.timedelta(days=1)).isoformat(), timezone="UTC")


@functools.cache
def _loaded() -> tuple[Calendar, dg.DailyPartitionsDefinition]:
    calendar = load_calendar()
    return calendar, daily_partitions(calendar)


def loaded_calendar() -> Calendar | None:
    """The calendar ``daily`` was built from, None while nothing has asked for it yet."""
    return _loaded()[0] if _loaded.cache_info().currsize else None


if TYPE_CHECKING:  # the lazy attributes __getattr__ returns, typed for their importers
    daily: dg.DailyPartitionsDefinition
    CALENDAR: Calendar
    FIRST_DAY: str


def __getattr__(name: str) -> object:
    # ``daily`` (one partition per UTC day of the shop's calendar), ``CALENDAR`` and
    # ``FIRST_DAY`` are read on first use, once per process, so importing this module for its
    # functions does not fix the calendar before a caller has set the environment
    if name == "daily":
        return _loaded()[1]
    if name == "CALENDAR":
        return _loaded()[0]
    if name == "FIRST_DAY":
        return _loaded()[0].first_day.isoformat()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

TRAINING_WINDOW_DAYS = 7
"""Start days of the episodes each nightly model is trained on (ending at the partition) and
evaluated on (ending ``settle_days`` earlier: ``offline_rl.pipeline.load_window``)."""


def _days_around(before: int, after: int) -> dg.TimeWindowPartitionMapping:
    """``before`` days before the partition to ``after`` days after it, where they exist."""
    with warnings.catch_warnings():  # the parameter is marked beta; we rely on its documented use
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=-before, end_offset=after,
            allow_nonexistent_upstream_partitions=True,
        )


def training_window(settle_days: int) -> dg.TimeWindowPartitionMapping:
    """The transition partitions a nightly partition's training and evaluation read: the
    training window and the evaluation window ``settle_days`` before it."""
    return _days_around(TRAINING_WINDOW_DAYS - 1 + settle_days, 0)


def days_outside_training_window(window_days: int, settle_days: int, lookahead_days: int
                                  ) -> int:
    """How many days before :func:`training_window` (``lookahead_days``) covers a run with
    these ``window_days`` and ``settle_days`` reads: the lineage does not show those days, so
    changes to them do not mark the candidates stale (0: everything read is declared)."""
    reads = window_days - 1 + settle_days
    declared = TRAINING_WINDOW_DAYS - 1 + lookahead_days
    return max(reads - declared, 0)


def raw_days(lookback: int, lookahead: int) -> dg.TimeWindowPartitionMapping:
    """The raw partitions a day's transitions read: ``lookback`` days before (to recognise
    episodes that began earlier) to ``lookahead`` days after (the ends of episodes that cross
    midnight or last several days), where they exist."""
    return _days_around(lookback, lookahead)


def partition_day(context: dg.AssetExecutionContext) -> dt.date:
    """The run's partition key as a date; a malformed key is refused with a clear error."""
    return parse_partition_key(context.partition_key)
