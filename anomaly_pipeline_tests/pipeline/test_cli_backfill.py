"""A backfill over past hours from the Dagster CLI: one run, every partition materialized."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
from dagster._core.instance.ref import InstanceRef

from anomaly_pipeline.definitions import build_resources
from anomaly_pipeline.settings import Settings
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS, TWEET_ANOMALIES

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def test_cli_partition_range_backfill_runs_once_and_fills_every_hour(tmp_path):
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATA_DIR": str(data)}
    completed = subprocess.run(
        [
            DAGSTER, "asset", "materialize",
            "-m", "anomaly_pipeline.definitions",
            "--select", "raw_tweets,hourly_tweet_metrics,tweet_anomalies",
            "--partition-range", "2026-02-01-00:00...2026-02-02-11:00",
        ],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]

    store = build_resources(Settings.from_env({"DATA_DIR": str(data)}))["delta_store"]
    metrics = store.scan(HOURLY_TWEET_METRICS).collect()
    assert metrics.height == 36 and metrics["tweet_count"].min() > 0
    verdicts = store.scan(TWEET_ANOMALIES).collect()
    assert verdicts.height == 72
    assert verdicts.filter(pl.col("status") == "ok").height > 0  # after a day of history

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
        partitions = instance.get_materialized_partitions(dg.AssetKey("tweet_anomalies"))
        assert len(partitions) == 36
