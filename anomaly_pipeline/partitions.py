"""The one hourly (UTC) partitions definition every asset shares.

`end_offset=1` makes the current, still-open hour a partition too: live ingestion writes into it
and its metrics fill in as the hour goes; the hourly schedule detects only hours that have closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"

HOURLY_PARTITIONS = dg.HourlyPartitionsDefinition(
    start_date="2025-01-01-00:00", timezone="UTC", end_offset=1
)


def hour_start(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in."""
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def partition_key(hour: datetime) -> str:
    return hour_start(hour).strftime(PARTITION_FORMAT)


def partition_hour(key: str) -> datetime:
    return datetime.strptime(key, PARTITION_FORMAT).replace(tzinfo=timezone.utc)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """Every hour start in [start, end)."""
    hours, hour = [], hour_start(start)
    while hour < end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours
