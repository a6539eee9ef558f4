"""The embedded stream engine: exact hourly metrics, duplicates counted once, dead letters."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline.resources.tweet_source import Tweet
from anomaly_pipeline.streaming.events import encode_tweet_event
from anomaly_pipeline.streaming.parse import MalformedEvent, parse_event_body
from anomaly_pipeline.tables import DEAD_LETTER_EVENTS, HOURLY_TWEET_METRICS, TWEETS
from anomaly_pipeline_tests.conftest import read_table, utc


def tweet(tweet_id: int, hour: int, minute: int, likes: int) -> Tweet:
    return Tweet(tweet_id, utc(2026, 5, 1, hour, minute), likes, 1, 0, 0, "en")


def publish(stream, tweets):
    stream.publish([(str(t.id), encode_tweet_event(t, "#Azure")) for t in tweets])


def run_engine(resources):
    return resources["stream_engine"].process_available(
        resources["event_stream"], resources["delta_store"]
    )


def metrics_by_hour(resources) -> dict:
    table = read_table(resources, HOURLY_TWEET_METRICS)
    return {row["hour"].hour: row for row in table.iter_rows(named=True)}


def test_hourly_metrics_are_exact_and_a_tweet_seen_twice_counts_once(resources):
    stream = resources["event_stream"]
    publish(stream, [tweet(1, 10, 5, 4), tweet(2, 10, 50, 10), tweet(3, 11, 0, 0)])
    report = run_engine(resources)
    assert report.events_read == 3 and report.dead_letters == 0

    # Tweet 2 arrives again with more likes, in a later batch: counted once, latest likes win.
    publish(stream, [tweet(2, 10, 50, 16), tweet(4, 11, 30, 3)])
    run_engine(resources)

    metrics = metrics_by_hour(resources)
    assert metrics[10]["tweet_count"] == 2 and metrics[10]["like_sum"] == 20
    assert metrics[10]["avg_likes"] == pytest.approx(10.0)
    assert metrics[11]["tweet_count"] == 2 and metrics[11]["avg_likes"] == pytest.approx(1.5)
    assert read_table(resources, TWEETS).height == 4
    assert sum(resources["event_stream"].lag().values()) == 0


def test_malformed_events_go_to_dead_letters_and_do_not_stop_the_stream(resources):
    stream = resources["event_stream"]
    good = encode_tweet_event(tweet(7, 9, 0, 5), "#Azure")
    bad_bodies = {
        "not json at all": "body is not valid JSON",
        "[1, 2]": "not an object",
        json.dumps({"created_at": "2026-05-01T09:00:00Z", "like_count": 1}): "missing field 'id'",
        json.dumps({"id": "12", "created_at": "yesterday", "like_count": 1}): "created_at",
        json.dumps({"id": "13", "created_at": "2026-05-01T09:00:00", "like_count": 1}): "timezone",
        json.dumps({"id": "14", "created_at": "2026-05-01T09:00:00Z", "like_count": -2}): "like_count",
        json.dumps({"id": "15", "created_at": "2026-05-01T09:00:00Z", "like_count": "3"}): "like_count",
    }
    stream.publish([("k", body) for body in bad_bodies] + [("7", good)])
    report = run_engine(resources)

    assert report.dead_letters == len(bad_bodies)
    dead = read_table(resources, DEAD_LETTER_EVENTS)
    reasons = dict(zip(dead["body"], dead["reason"]))
    for body, reason_part in bad_bodies.items():
        assert reason_part in reasons[body]
    assert metrics_by_hour(resources)[9]["tweet_count"] == 1

    # Re-processing (e.g. after a crash before the checkpoint) does not duplicate dead letters.
    resources["event_stream"].save_checkpoints({pid: -1 for pid in stream.partition_ids()})
    run_engine(resources)
    assert read_table(resources, DEAD_LETTER_EVENTS).height == len(bad_bodies)
    assert metrics_by_hour(resources)[9]["tweet_count"] == 1


def test_parse_rejects_non_integer_counts_and_bad_ids():
    with pytest.raises(MalformedEvent, match="id"):
        parse_event_body(json.dumps({"id": "12ab", "created_at": "2026-05-01T09:00:00Z", "like_count": 1}))
    with pytest.raises(MalformedEvent, match="retweet_count"):
        parse_event_body(
            json.dumps({"id": "1", "created_at": "2026-05-01T09:00:00Z", "like_count": 1, "retweet_count": 1.5})
        )
    row = parse_event_body(json.dumps({"id": 5, "created_at": "2026-05-01T09:10:00+02:00", "like_count": 2}))
    assert row[0] == 5 and row[1] == utc(2026, 5, 1, 7, 10) and row[3:6] == (0, 0, 0)


def test_metrics_partition_materialization_reports_hours_touched_outside_it(resources, instance):
    publish(resources["event_stream"], [tweet(1, 3, 0, 1), tweet(2, 5, 0, 2)])
    result = dg.materialize(
        [hourly_tweet_metrics],
        resources=resources,
        instance=instance,
        partition_key=partition_key(utc(2026, 5, 1, 4)),
    )
    assert result.success
    metrics = metrics_by_hour(resources)
    assert metrics[4]["tweet_count"] == 0 and metrics[4]["avg_likes"] is None  # explicit empty hour
    records = instance.fetch_materializations(hourly_tweet_metrics.key, limit=100).records
    materialized = {record.asset_materialization.partition for record in records}
    assert materialized == {"2026-05-01-03:00", "2026-05-01-04:00", "2026-05-01-05:00"}
    assert pl.Series(list(metrics)).sort().to_list() == [3, 4, 5]
