"""The data-quality checks pass on what the pipeline writes and catch what it must never write."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import polars as pl
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.automation import history_job
from anomaly_pipeline.checks import ALL_CHECKS
from anomaly_pipeline.definitions import build_definitions
from anomaly_pipeline.settings import Settings
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS
from anomaly_pipeline_tests.conftest import read_table, utc


def check_results(result) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


def test_checks_run_with_the_pipeline_jobs_and_pass(data_dir, instance):
    defs = build_definitions(Settings.from_env({"DATA_DIR": str(data_dir)}))
    job = defs.resolve_job_def(history_job.name)
    result = job.execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: "2026-03-01-00:00", ASSET_PARTITION_RANGE_END_TAG: "2026-03-01-23:00"},
    )  # fmt: skip
    assert result.success
    assert check_results(result) == {
        "metrics_are_consistent": True,
        "few_dead_letters": True,
        "verdicts_are_consistent": True,
    }


def test_checks_catch_a_wrong_average(resources, instance):
    start = utc(2026, 3, 1)
    row = pl.DataFrame(
        {"hour": [start], "tweet_count": [4], "like_sum": [10], "avg_likes": [9.0], "retweet_sum": [0],
         "reply_sum": [0], "quote_sum": [0], "updated_at": [datetime.now(timezone.utc)]},
        schema_overrides={"hour": pl.Datetime("us", "UTC"), "updated_at": pl.Datetime("us", "UTC")},
    )  # fmt: skip
    resources["delta_store"].merge(HOURLY_TWEET_METRICS, row)
    assert read_table(resources, HOURLY_TWEET_METRICS).height == 1
    result = dg.materialize(
        [raw_tweets, hourly_tweet_metrics, tweet_anomalies, *ALL_CHECKS],
        selection=[dg.AssetKey("hourly_tweet_metrics")],
        resources=resources, instance=instance, raise_on_error=False,
        partition_key="2026-03-02-05:00",
    )  # fmt: skip
    assert check_results(result)["metrics_are_consistent"] is False
