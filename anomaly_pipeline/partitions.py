"""The one hourly (UTC) partitions definition every asset shares.

`end_offset=1` makes the current, still-open hour a partition too: live ingestion writes into it
and its metrics fill in as the hour goes; the hourly schedule detects only hours that have closed.

The first partition is `PARTITIONS_START` (a UTC date, `YYYY-MM-DD`, default 2025-01-01): set it
to when your data begins, so the UI does not list every hour since 2025 as missing. Choose it
once: moving it later hides (or adds) partitions that already have materializations.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import dagster as dg

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"
DEFAULT_START = "2025-01-01"


def partitions_start(value: str | None) -> str:
    """The partitions' start date from `PARTITIONS_START`, checked (a clear error, not a stack)."""
    text = (value or "").strip() or DEFAULT_START
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"PARTITIONS_START must be a date like 2026-11-01, got {text!r}") from None
    if day > datetime.now():
        raise ValueError(f"PARTITIONS_START {text} is in the future: no hour would be a partition yet")
    return day.strftime(PARTITION_FORMAT)


START_KEY = partitions_start(os.environ.get("PARTITIONS_START"))
HOURLY_PARTITIONS = dg.HourlyPartitionsDefinition(start_date=START_KEY, timezone="UTC", end_offset=1)


def hour_start(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in."""
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def partition_key(hour: datetime) -> str:
    return hour_start(hour).strftime(PARTITION_FORMAT)


def partition_hour(key: str) -> datetime:
    return datetime.strptime(key, PARTITION_FORMAT).replace(tzinfo=timezone.utc)


FIRST_HOUR = partition_hour(START_KEY)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """Every hour start in [start, end)."""
    hours, hour = [], hour_start(start)
    while hour < end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours
