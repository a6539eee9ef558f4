"""A tweet re-sent with another `created_at` moves to its new hour: one row per id across the
tweets table, the hour it left and the hour it entered both recomputed, never counted twice."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import polars as pl

from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline.resources.tweet_source import Tweet
from anomaly_pipeline.streaming.events import encode_tweet_event
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS, TWEETS
from anomaly_pipeline_tests.conftest import read_table, utc


def publish(resources, *tweets: tuple[int, datetime, int]) -> None:
    resources["event_stream"].publish(
        [(str(i), encode_tweet_event(Tweet(i, at, likes, 0, 0, 0, "en"), "#Azure")) for i, at, likes in tweets]
    )


def run_engine(resources):
    return resources["stream_engine"].process_available(resources["event_stream"], resources["delta_store"])


def counts(resources) -> dict[datetime, tuple[int, int]]:
    hourly = read_table(resources, HOURLY_TWEET_METRICS)
    return {hour: (count, likes) for hour, count, likes in hourly.select("hour", "tweet_count", "like_sum").rows()}


def stored(resources) -> list[tuple]:
    return read_table(resources, TWEETS).sort("tweet_id").select("tweet_id", "created_at", "day").rows()


def test_a_tweet_moved_within_the_day_leaves_its_old_hour(resources):
    publish(resources, (1, utc(2026, 5, 1, 10, 5), 4), (2, utc(2026, 5, 1, 10, 30), 10))
    run_engine(resources)
    publish(resources, (1, utc(2026, 5, 1, 12, 15), 6))  # tweet 1 again, created two hours later
    report = run_engine(resources)

    assert counts(resources) == {utc(2026, 5, 1, 10): (1, 10), utc(2026, 5, 1, 12): (1, 6)}
    assert report.tweets_moved == 1
    assert report.touched_hours == {utc(2026, 5, 1, 10), utc(2026, 5, 1, 12)}
    assert [row[:2] for row in stored(resources)] == [(1, utc(2026, 5, 1, 12, 15)), (2, utc(2026, 5, 1, 10, 30))]


def test_a_tweet_moved_to_another_day_keeps_one_row_and_both_hours_are_materialized(resources, instance):
    publish(resources, (1, utc(2026, 5, 1, 23, 50), 4), (2, utc(2026, 5, 2, 3, 0), 1))
    run_engine(resources)
    publish(resources, (1, utc(2026, 5, 2, 3, 20), 5))  # the next day, an hour holding tweet 2
    new_hour = utc(2026, 5, 2, 3)
    result = dg.materialize([hourly_tweet_metrics], resources=resources, instance=instance,
                            partition_key=partition_key(new_hour))
    assert result.success

    assert counts(resources) == {utc(2026, 5, 1, 23): (0, 0), new_hour: (2, 6)}
    assert stored(resources) == [(1, utc(2026, 5, 2, 3, 20), utc(2026, 5, 2).date()),
                                 (2, utc(2026, 5, 2, 3, 0), utc(2026, 5, 2).date())]
    records = instance.fetch_materializations(hourly_tweet_metrics.key, limit=10).records
    # the hour tweet 1 left is reported as changed, next to the requested partition
    assert {r.asset_materialization.partition for r in records} == {"2026-05-01-23:00", "2026-05-02-03:00"}

    publish(resources, (1, utc(2026, 5, 1, 23, 50), 7))  # and back again
    run_engine(resources)
    assert counts(resources) == {utc(2026, 5, 1, 23): (1, 7), new_hour: (1, 1)}
    assert read_table(resources, TWEETS).get_column("tweet_id").sort().to_list() == [1, 2]
    assert read_table(resources, TWEETS).filter(pl.col("tweet_id") == 1)["day"].to_list() == [utc(2026, 5, 1).date()]
