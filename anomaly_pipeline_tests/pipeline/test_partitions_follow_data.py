"""Without PARTITIONS_START the first partition follows the data: the day the first metrics hour
falls in, else the day the history seed starts; it is kept in DATA_DIR, so it is the same in every
process and after a restart, and PARTITIONS_START still overrides it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from anomaly_pipeline.partitions import STATE_FILE, STATE_KEY, data_start, resolve_start_key
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.state_store import StateStore
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS
from anomaly_pipeline_tests.conftest import utc

FIRST_PARTITION = (
    "from anomaly_pipeline.definitions import defs\n"
    "repo = defs.get_repository_def()\n"
    "print(sorted({a.partitions_def.get_first_partition_key() for a in repo.assets_defs_by_key.values()}))\n"
)


def first_partition_in_a_new_process(data_dir, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "PARTITIONS_START"}
    environ.update({"DATA_DIR": str(data_dir), **env})
    done = subprocess.run(
        [sys.executable, "-c", FIRST_PARTITION], env=environ, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_start_is_the_day_of_the_first_metrics_hour_or_of_the_seed():
    now = utc(2026, 12, 1, 22, 9)
    assert data_start(utc(2026, 11, 3, 17), now, 168) == utc(2026, 11, 3)
    assert data_start(None, now, 168) == utc(2026, 11, 24)  # 22:00 minus 7 days, that day
    assert data_start(None, utc(2026, 12, 1, 0, 1), 0) == utc(2026, 11, 30)  # the hour just closed


def test_a_fresh_data_dir_starts_at_the_seed_and_keeps_that_start(tmp_path):
    now = datetime.now(timezone.utc)
    seed_day = (now - timedelta(hours=48)).strftime("%Y-%m-%d")
    assert first_partition_in_a_new_process(tmp_path, SEED_HISTORY_HOURS="48") == f"['{seed_day}-00:00']"
    kept = StateStore(path=str(tmp_path / STATE_FILE)).get(STATE_KEY)
    assert kept == f"{seed_day}-00:00"
    # a restart with another seed length (or on another day) keeps the start the data has
    assert first_partition_in_a_new_process(tmp_path, SEED_HISTORY_HOURS="500") == f"['{kept}']"
    assert resolve_start_key({"DATA_DIR": str(tmp_path), "PARTITIONS_START": "2026-01-05"}) == "2026-01-05-00:00"


def test_existing_metrics_set_the_start(tmp_path):
    store = DeltaStore.from_root(str(tmp_path / "delta"))
    hours = [utc(2026, 3, 4, 5) + timedelta(hours=i) for i in range(3)]
    store.merge(HOURLY_TWEET_METRICS, pl.DataFrame({
        "hour": hours, "tweet_count": [3, 4, 5], "like_sum": [3, 4, 5], "avg_likes": [1.0] * 3,
        "retweet_sum": [0] * 3, "reply_sum": [0] * 3, "quote_sum": [0] * 3, "updated_at": hours,
    }))  # fmt: skip
    assert resolve_start_key({"DATA_DIR": str(tmp_path)}) == "2026-03-04-00:00"
    assert StateStore(path=str(tmp_path / STATE_FILE)).get(STATE_KEY) == "2026-03-04-00:00"


def test_a_corrupt_kept_start_names_the_key(tmp_path):
    StateStore(path=str(tmp_path / STATE_FILE)).set(STATE_KEY, "last tuesday")
    with pytest.raises(ValueError, match="kept partitions start 'last tuesday'.*set PARTITIONS_START"):
        resolve_start_key({"DATA_DIR": str(tmp_path)})
