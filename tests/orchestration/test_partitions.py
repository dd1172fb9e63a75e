"""The partition calendar, and the mappings: which transition days a nightly partition declares
it reads."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from orchestration.partitions import (
    CALENDAR_FILE,
    FIRST_DAY_ENV,
    FIRST_NIGHT_ENV,
    LAST_DAY_ENV,
    TRAINING_WINDOW_DAYS,
    Calendar,
    daily_partitions,
    days_outside_training_window,
    load_calendar,
    training_window,
    write_calendar,
)

daily = daily_partitions(Calendar(dt.date(2026, 1, 1)))


def _upstream(mapping: dg.TimeWindowPartitionMapping, key: str) -> list[str]:
    subset = daily.empty_subset().with_partition_keys([key])
    result = mapping.get_upstream_mapped_partitions_result_for_partitions(
        subset, daily, daily)
    return sorted(result.partitions_subset.get_partition_keys())


def test_training_window_declares_the_training_and_the_settled_evaluation_days():
    keys = _upstream(training_window(6), "2026-03-20")
    # 7 start days of training plus 6 settle days before them: 03-08 .. 03-20
    assert keys[0] == "2026-03-08" and keys[-1] == "2026-03-20"
    assert len(keys) == TRAINING_WINDOW_DAYS + 6


def test_days_outside_the_declared_window_are_counted():
    assert days_outside_training_window(TRAINING_WINDOW_DAYS, 6, 6) == 0
    assert days_outside_training_window(TRAINING_WINDOW_DAYS, 0, 6) == 0  # fewer days: fine
    assert days_outside_training_window(TRAINING_WINDOW_DAYS, 9, 6) == 3
    assert days_outside_training_window(TRAINING_WINDOW_DAYS + 2, 6, 6) == 2


def test_the_first_day_is_the_shops_and_a_year_of_history_backfills(monkeypatch, tmp_path):
    monkeypatch.setenv(FIRST_DAY_ENV, "2024-03-01")
    monkeypatch.delenv(LAST_DAY_ENV, raising=False)
    monkeypatch.delenv(FIRST_NIGHT_ENV, raising=False)
    calendar = load_calendar(home=tmp_path)
    assert calendar == Calendar(dt.date(2024, 3, 1), None, source=FIRST_DAY_ENV)
    days = daily_partitions(calendar)
    assert days.has_partition_key("2024-03-01")
    assert not days.has_partition_key("2024-02-29")
    year = days.get_partition_keys_in_range(dg.PartitionKeyRange("2024-03-01", "2025-02-28"))
    assert len(year) == 365 and year[0] == "2024-03-01" and year[-1] == "2025-02-28"
    # the default reaches a year before today's demo days too
    default = daily_partitions(load_calendar({}, tmp_path))
    assert default.has_partition_key(
        (dt.date.today() - dt.timedelta(days=365)).isoformat())


def test_a_malformed_first_day_names_the_variable(tmp_path):
    with pytest.raises(ValueError, match="OFFLINE_RL_FIRST_DAY must be a day as YYYY-MM-DD"):
        load_calendar({FIRST_DAY_ENV: "2024-13-01"}, tmp_path)
    with pytest.raises(ValueError, match="OFFLINE_RL_LAST_DAY is set without"):
        load_calendar({LAST_DAY_ENV: "2024-12-01"}, tmp_path)
    with pytest.raises(ValueError, match="before the first day"):
        load_calendar({FIRST_DAY_ENV: "2024-03-01", LAST_DAY_ENV: "2024-02-01"}, tmp_path)
    (tmp_path / CALENDAR_FILE).write_text('{"first": "2024-01-01"}')
    with pytest.raises(ValueError, match="calendar.json must hold"):
        load_calendar({}, tmp_path)


def test_the_data_homes_calendar_applies_when_the_variable_is_unset(tmp_path):
    written = write_calendar(tmp_path, Calendar(dt.date(2026, 10, 1), dt.date(2026, 10, 20)))
    assert written == tmp_path / CALENDAR_FILE
    calendar = load_calendar({}, tmp_path)
    assert (calendar.first_day, calendar.last_day) == (dt.date(2026, 10, 1),
                                                       dt.date(2026, 10, 20))
    keys = daily_partitions(calendar).get_partition_keys()
    assert len(keys) == 20 and keys[0] == "2026-10-01" and keys[-1] == "2026-10-20"
    # $OFFLINE_RL_HOME locates the file when no home is given; the variable overrides it
    assert load_calendar({"OFFLINE_RL_HOME": str(tmp_path)}).first_day == dt.date(2026, 10, 1)
    assert load_calendar({"OFFLINE_RL_HOME": str(tmp_path),
                          FIRST_DAY_ENV: "2025-01-01"}).last_day is None


def test_the_nights_start_at_the_first_night_and_the_days_at_the_first_day(tmp_path):
    """A shop that starts running the nightly stages after a backfill of its history has
    nights from then on only (so the nights that never ran are not shown as missing), while
    ingestion and transitions keep every day; without a first night both start together."""
    env = {FIRST_DAY_ENV: "2024-03-01", FIRST_NIGHT_ENV: "2025-03-01"}
    calendar = load_calendar(env, tmp_path)
    days, nights = daily_partitions(calendar), daily_partitions(calendar, nights=True)
    assert days.has_partition_key("2024-03-01") and not nights.has_partition_key("2025-02-28")
    assert nights.has_partition_key("2025-03-01")
    same = load_calendar({FIRST_DAY_ENV: "2024-03-01"}, tmp_path)
    assert daily_partitions(same, nights=True) == daily_partitions(same)
    # the data home's calendar carries it too, and a first night outside the days is refused
    write_calendar(tmp_path, Calendar(dt.date(2026, 10, 1), dt.date(2026, 10, 20),
                                      first_night=dt.date(2026, 10, 20)))
    nights = daily_partitions(load_calendar({}, tmp_path), nights=True)
    assert nights.get_partition_keys() == ["2026-10-20"]
    with pytest.raises(ValueError, match="first night 2024-02-01 is outside the days"):
        load_calendar({FIRST_DAY_ENV: "2024-03-01", FIRST_NIGHT_ENV: "2024-02-01"}, tmp_path)
    with pytest.raises(ValueError, match="OFFLINE_RL_FIRST_NIGHT is set without"):
        load_calendar({FIRST_NIGHT_ENV: "2024-03-01"}, tmp_path)
    with pytest.raises(ValueError, match="OFFLINE_RL_FIRST_NIGHT must be a day"):
        load_calendar({FIRST_DAY_ENV: "2024-03-01", FIRST_NIGHT_ENV: "soon"}, tmp_path)


def test_a_run_whose_days_or_nights_the_loaded_partitions_lack_is_told_why(monkeypatch):
    """The demo and the loop ask before they run: partitions are fixed once a process loaded
    them, so a run outside them must start in a fresh process."""
    from orchestration import partitions

    day = dt.date(2026, 10, 1)
    monkeypatch.setattr(partitions, "loaded_calendar", lambda: None)
    assert partitions.not_held(day, day, day) is None  # nothing loaded: the run's calendar
    loaded = Calendar(day, day + dt.timedelta(days=19), source="calendar.json",
                      first_night=day + dt.timedelta(days=19))
    monkeypatch.setattr(partitions, "loaded_calendar", lambda: loaded)
    assert partitions.not_held(day, day + dt.timedelta(days=19), day + dt.timedelta(days=19)) \
        is None
    why = partitions.not_held(day, day + dt.timedelta(days=19), day + dt.timedelta(days=7))
    assert why == ("this process's partitions (2026-10-01 to 2026-10-20, nights from "
                   "2026-10-20; from calendar.json) do not cover the days 2026-10-01 to "
                   "2026-10-20 with nights from 2026-10-08")
    assert partitions.not_held(day, day + dt.timedelta(days=25), day + dt.timedelta(days=19))
