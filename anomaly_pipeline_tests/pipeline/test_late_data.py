"""Late data: an hour that changes after its verdict is judged again, with every later judged hour."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import polars as pl
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.late_data import late_data_sensor
from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline.resources.tweet_source import Tweet
from anomaly_pipeline.streaming.events import encode_tweet_event
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS, TWEET_ANOMALIES
from anomaly_pipeline_tests.conftest import materialize_range, read_table, utc

START = utc(2026, 1, 27)
END = START + timedelta(days=3)
LATE_HOUR = START + timedelta(hours=50)
LATE_TWEETS = 600


def _verdict(resources, hour) -> dict:
    rows = read_table(resources, TWEET_ANOMALIES).filter((pl.col("hour") == hour) & (pl.col("metric") == "tweet_count"))
    return rows.row(0, named=True)


def test_late_tweets_rejudge_the_hour_and_the_hours_after_it(resources, instance):
    materialize_range([raw_tweets, hourly_tweet_metrics, tweet_anomalies], resources, instance, START, END)
    before = _verdict(resources, LATE_HOUR)
    sensor_context = dg.build_sensor_context(instance=instance)
    assert isinstance(late_data_sensor(sensor_context), dg.SkipReason)  # judged runs change nothing

    late = [Tweet(9_000_000 + i, LATE_HOUR + timedelta(minutes=i % 60), 1, 0, 0, 0, "en") for i in range(LATE_TWEETS)]
    resources["event_stream"].publish([(str(t.id), encode_tweet_event(t, "#Azure")) for t in late])
    streamed = dg.materialize([hourly_tweet_metrics], resources=resources, instance=instance,
                              partition_key=partition_key(END + timedelta(hours=5)))  # as stream_sensor does
    assert streamed.success
    counts = read_table(resources, HOURLY_TWEET_METRICS).filter(pl.col("hour") == LATE_HOUR)["tweet_count"]
    assert counts.item() == before["value"] + LATE_TWEETS
    assert _verdict(resources, LATE_HOUR)["value"] == before["value"]  # not re-judged yet

    request = late_data_sensor(dg.build_sensor_context(instance=instance, cursor=sensor_context.cursor))
    assert isinstance(request, dg.RunRequest), request
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == partition_key(LATE_HOUR)
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == partition_key(END - timedelta(hours=1))
    assert request.tags["reason"] == "late data" and partition_key(LATE_HOUR) in request.tags["changed_hours"]

    result = dg.materialize([tweet_anomalies], resources=resources, instance=instance, tags=request.tags)
    assert result.success
    after = _verdict(resources, LATE_HOUR)
    assert after["value"] == before["value"] + LATE_TWEETS and after["is_anomaly"]
    later = _verdict(resources, END - timedelta(hours=1))
    assert later["detected_at"] > before["detected_at"]  # the later hours were judged again too
