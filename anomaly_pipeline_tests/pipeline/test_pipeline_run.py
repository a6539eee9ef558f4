"""The three assets run end to end on the embedded defaults, over real Delta tables."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS, TWEET_ANOMALIES, TWEETS
from anomaly_pipeline_tests.conftest import materialize_range, read_table, utc

ALL_ASSETS = [raw_tweets, hourly_tweet_metrics, tweet_anomalies]
# Seven days that hold injected anomalies once the 72-hour window is full (checked, not assumed).
START = utc(2026, 1, 27)
FULL_WINDOW = timedelta(hours=71)
END = START + timedelta(days=7)


def test_seven_day_run_flags_injected_anomalies_and_few_normal_hours(resources, instance):
    source = resources["tweet_source"]
    injected = dict(source.anomalous_hours(START, END))
    judged = {hour: kind for hour, kind in injected.items() if hour >= START + FULL_WINDOW}
    assert len(judged) >= 2, "the chosen week must hold injected anomalies with a full window"

    materialize_range(ALL_ASSETS, resources, instance, START, END)

    metrics = read_table(resources, HOURLY_TWEET_METRICS).sort("hour")
    assert metrics.height == 7 * 24
    expected_tweets = [t for t in source.fetch_interval(START, END) if not t.is_retweet]
    assert metrics["tweet_count"].sum() == len(expected_tweets)
    assert metrics["like_sum"].sum() == sum(t.like_count for t in expected_tweets)
    assert read_table(resources, TWEETS).height == len(expected_tweets)

    verdicts = read_table(resources, TWEET_ANOMALIES)
    assert verdicts.height == 7 * 24 * 2  # one row per hour and metric
    assert set(verdicts["status"]) <= {"ok", "insufficient_history", "no_data"}
    assert verdicts.filter(pl.col("hour") < START + timedelta(hours=11))["status"].unique().to_list() == [
        "insufficient_history"
    ]
    flagged = verdicts.filter(pl.col("is_anomaly"))
    flagged_hours = set(flagged["hour"].to_list())
    for hour, kind in judged.items():
        assert hour in flagged_hours, f"injected {kind} at {hour} was not flagged"
    # false alarms per judged (hour, metric): this is the detector's first week, its warm-up
    judged_count = verdicts.filter(pl.col("status") == "ok").height
    false_alarms = flagged.filter(~pl.col("hour").is_in(list(injected)))
    assert false_alarms.height <= 0.02 * judged_count, false_alarms.select("hour", "metric").rows()


def test_rerunning_a_range_gives_identical_tables(resources, instance):
    start, end = START, START + timedelta(days=3)
    volatile = ["updated_at", "detected_at", "ingested_at"]

    def snapshot():
        return {
            spec.name: read_table(resources, spec).drop(volatile, strict=False).sort(spec.merge_key)
            for spec in (TWEETS, HOURLY_TWEET_METRICS, TWEET_ANOMALIES)
        }

    materialize_range(ALL_ASSETS, resources, instance, start, end)
    first = snapshot()
    materialize_range(ALL_ASSETS, resources, instance, start, end)
    second = snapshot()
    for name, table in first.items():
        assert table.height > 0
        assert table.equals(second[name]), f"{name} changed on re-run"
