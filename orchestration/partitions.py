"""Daily partitions and the partition mappings between stages.

Two daily partitions definitions, both read once, when the code location loads (see
:func:`load_calendar`): ``daily``, the days of logs (ingestion and transitions), from the
shop's first day of logs; and ``nights``, the nights the pipeline trains, evaluates, gates,
exports and monitors, from its first night (by default the first day of logs). The days come
from ``$OFFLINE_RL_FIRST_DAY`` (``$OFFLINE_RL_FIRST_NIGHT``, ``$OFFLINE_RL_LAST_DAY``), else the
data home's ``calendar.json`` (``offline-rl demo`` writes its simulated days there), else
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
FIRST_NIGHT_ENV = "OFFLINE_RL_FIRST_NIGHT"
CALENDAR_FILE = "calendar.json"
"""In the data home: ``{"first_day": "YYYY-MM-DD", "last_day": "YYYY-MM-DD" | null,
"first_night": "YYYY-MM-DD" | null}`` (``first_night`` may be left out)."""
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
    first_night: dt.date | None = None
    """The first night the nightly stages have a partition for (None: ``first_day``): the
    night the shop started running them, so that the nights before it, which never ran, are
    not shown as missing."""

    def __post_init__(self) -> None:
        if self.last_day is not None and self.last_day < self.first_day:
            raise ValueError(f"the last day {self.last_day} is before the first day "
                             f"{self.first_day} ({self.source})")
        night = self.nights_from
        if night < self.first_day or (self.last_day is not None and night > self.last_day):
            raise ValueError(f"the first night {night} is outside the days {self.first_day} "
                             f"to {self.last_day or 'today'} ({self.source})")

    @property
    def nights_from(self) -> dt.date:
        """The first night: ``first_night``, else ``first_day``."""
        return self.first_day if self.first_night is None else self.first_night

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
    ``$OFFLINE_RL_LAST_DAY`` and ``$OFFLINE_RL_FIRST_NIGHT``) when set; else ``calendar.json``
    in the data home (``home``, else ``$OFFLINE_RL_HOME``, else ``./.data``) when it exists;
    else :data:`DEFAULT_FIRST_DAY` with no last day. A malformed value raises ``ValueError``
    naming the variable or file."""
    environ = os.environ if environ is None else environ
    first = environ.get(FIRST_DAY_ENV, "").strip()
    last = environ.get(LAST_DAY_ENV, "").strip()
    night = environ.get(FIRST_NIGHT_ENV, "").strip()
    if first:
        return Calendar(_day(first, FIRST_DAY_ENV),
                        _day(last, LAST_DAY_ENV) if last else None, source=FIRST_DAY_ENV,
                        first_night=_day(night, FIRST_NIGHT_ENV) if night else None)
    for name, value in ((LAST_DAY_ENV, last), (FIRST_NIGHT_ENV, night)):
        if value:
            raise ValueError(f"{name} is set without {FIRST_DAY_ENV}")
    path = (Path(home) if home is not None
            else resolve_home(environ.get("OFFLINE_RL_HOME") or None)) / CALENDAR_FILE
    if not path.is_file():
        return Calendar(DEFAULT_FIRST_DAY)
    try:
        data = json.loads(path.read_text())
        first_day = _day(data["first_day"], f"first_day in {path}")
        last_day = data.get("last_day")
        first_night = data.get("first_night")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} must hold {{\"first_day\": \"YYYY-MM-DD\", \"last_day\": "
                         f"\"YYYY-MM-DD\" or null}} (set {FIRST_DAY_ENV} to override it): "
                         f"{exc}") from None
    return Calendar(first_day,
                    _day(last_day, f"last_day in {path}") if last_day else None,
                    source=str(path),
                    first_night=_day(first_night, f"first_night in {path}")
                    if first_night else None)


def write_calendar(home: str | os.PathLike[str], calendar: Calendar) -> Path:
    """Writes ``calendar`` to ``home/calendar.json``, where :func:`load_calendar` finds it."""
    path = Path(home) / CALENDAR_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "first_day": calendar.first_day.isoformat(),
        "last_day": calendar.last_day.isoformat() if calendar.last_day else None,
        "first_night": calendar.first_night.isoformat() if calendar.first_night else None})
        + "\n")
    return path


def daily_partitions(calendar: Calendar, nights: bool = False
                     ) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day of the calendar (``nights``: from its first night);
    without a last day, through the day in progress (its partition exists so that
    late-evening runs of it are possible)."""
    start = (calendar.nights_from if nights else calendar.first_day).isoformat()
    if calendar.last_day is None:
        return dg.DailyPartitionsDefinition(start_date=start, end_offset=1, timezone="UTC")
    return dg.DailyPartitionsDefinition(
        start_date=start,
        end_date=(calendar.last_day + dt.timedelta(days=1)).isoformat(), timezone="UTC")


@functools.cache
def _loaded() -> tuple[Calendar, dg.DailyPartitionsDefinition, dg.DailyPartitionsDefinition]:
    calendar = load_calendar()
    return calendar, daily_partitions(calendar), daily_partitions(calendar, nights=True)


def loaded_calendar() -> Calendar | None:
    """The calendar ``daily`` was built from, None while nothing has asked for it yet."""
    return _loaded()[0] if _loaded.cache_info().currsize else None


def not_held(first_day: dt.date, last_day: dt.date, first_night: dt.date) -> str | None:
    """Why this process's partitions, fixed once loaded, cannot hold a run over the days
    ``first_day`` to ``last_day`` whose nights start at ``first_night``; None when they can
    (or nothing has loaded them yet, so the run's calendar will apply)."""
    loaded = loaded_calendar()
    if loaded is None or (loaded.covers(first_day) and loaded.covers(last_day)
                          and loaded.nights_from <= first_night):
        return None
    return (f"this process's partitions ({loaded.first_day} to {loaded.last_day or 'today'}, "
            f"nights from {loaded.nights_from}; from {loaded.source}) do not cover the days "
            f"{first_day} to {last_day} with nights from {first_night}")


if TYPE_CHECKING:  # the lazy attributes __getattr__ returns, typed for their importers
    daily: dg.DailyPartitionsDefinition
    nights: dg.DailyPartitionsDefinition
    CALENDAR: Calendar
    FIRST_DAY: str


def __getattr__(name: str) -> object:
    # ``daily`` (one partition per UTC day of the shop's calendar), ``nights`` (from its first
    # night), ``CALENDAR`` and ``FIRST_DAY`` are read on first use, once per process, so
    # importing this module for its functions does not fix the calendar before a caller has
    # set the environment
    if name == "daily":
        return _loaded()[1]
    if name == "nights":
        return _loaded()[2]
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
