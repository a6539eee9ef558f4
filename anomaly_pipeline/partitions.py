"""The one hourly (UTC) partitions definition every asset shares.

`end_offset=1` makes the current, still-open hour a partition too: live ingestion writes into it
and its metrics fill in as the hour goes; the hourly schedule detects only hours that have closed.

Where the partitions start, so the UI's Partitions view lists the hours that exist:
1. `PARTITIONS_START` (a UTC date, `YYYY-MM-DD`) when set;
2. else the start this data directory already uses (kept under `partitions_start` in
   `DATA_DIR/state.sqlite`, so every process and every restart agrees);
3. else, chosen once and kept: the UTC day of the first hour in the local `hourly_tweet_metrics`
   table, or, on a fresh start, the day the history seed begins (now minus `SEED_HISTORY_HOURS`).

The start is resolved on first use of `HOURLY_PARTITIONS` / `START_KEY` / `FIRST_HOUR` (once per
process); the hour helpers below need none of it. Moving the start later hides (or adds)
partitions that already have materializations; `make clean` forgets the kept start with the data.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

if TYPE_CHECKING:
    from anomaly_pipeline.settings import Settings

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"
DEFAULT_START = "2025-01-01"
"""The earliest hour where the start cannot be derived from the data (the Databricks job without
PARTITIONS_START)."""
START_VARIABLE = "PARTITIONS_START"
STATE_KEY = "partitions_start"  # the kept start, in the pipeline's StateStore
STATE_FILE = "state.sqlite"  # the pipeline_state resource's file under DATA_DIR


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


def partitions_start(value: str | None) -> str | None:
    """The start key from `PARTITIONS_START`, checked (a clear error, not a stack); None if unset."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"PARTITIONS_START must be a date like 2026-11-01, got {text!r}") from None
    if day > datetime.now():
        raise ValueError(f"PARTITIONS_START {text} is in the future: no hour would be a partition yet")
    return day.strftime(PARTITION_FORMAT)


def data_start(first_metrics_hour: datetime | None, now: datetime, seed_history_hours: int) -> datetime:
    """The UTC day the data begins: that of the first hour with metrics, else that of the first
    hour the history seed fills (at least the hour that just closed, which the schedule judges)."""
    first = first_metrics_hour or hour_start(now) - timedelta(hours=max(seed_history_hours, 1))
    return hour_start(first).replace(hour=0)


def resolve_start_key(environ: Mapping[str, str] | None = None, now: datetime | None = None) -> str:
    """The first partition key, by the rules in the module docstring (keeps a derived start)."""
    from anomaly_pipeline.resources.state_store import StateStore
    from anomaly_pipeline.settings import Settings  # settings checks PARTITIONS_START with this module

    env = os.environ if environ is None else environ
    explicit = partitions_start(env.get(START_VARIABLE))
    if explicit:
        return explicit
    settings = Settings.from_env(env)
    state = StateStore(path=str(Path(settings.data_dir) / STATE_FILE))
    kept = state.get(STATE_KEY)
    if kept is None:
        now = now or datetime.now(timezone.utc)
        derived = data_start(_first_metrics_hour(settings), now, settings.seed_history_hours)
        state.compare_and_set(STATE_KEY, None, partition_key(derived))  # the first process wins
        kept = state.get(STATE_KEY)
    try:
        partition_hour(kept)
    except ValueError:
        raise ValueError(
            f"the kept partitions start {kept!r} ({STATE_KEY} in {state.path}) is not an hour key "
            f"like 2026-11-01-00:00; set {START_VARIABLE} or delete that key"
        ) from None
    return kept


def _first_metrics_hour(settings: Settings) -> datetime | None:
    """The first hour in a local `hourly_tweet_metrics` table (a remote root is not read here:
    that would need its credentials at import time)."""
    from anomaly_pipeline.resources.delta_store import DeltaStore
    from anomaly_pipeline.tables import HOURLY_TWEET_METRICS

    if settings.delta_is_remote:
        return None
    store = DeltaStore.from_root(settings.delta_uri)
    return store.scan(HOURLY_TWEET_METRICS).select(pl.col("hour").min()).collect().item()


@functools.cache
def _resolved() -> dict[str, object]:
    start_key = resolve_start_key()
    return {
        "START_KEY": start_key,
        "FIRST_HOUR": partition_hour(start_key),
        "HOURLY_PARTITIONS": dg.HourlyPartitionsDefinition(
            start_date=start_key, timezone="UTC", end_offset=1
        ),
    }


def __getattr__(name: str):
    """`START_KEY`, `FIRST_HOUR` and `HOURLY_PARTITIONS`, resolved once per process on first use."""
    if name in ("START_KEY", "FIRST_HOUR", "HOURLY_PARTITIONS"):
        return _resolved()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
