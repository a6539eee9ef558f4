"""A counted table deleted after the stream wrote it is an error naming it, never an empty new table;
the first run still creates every table by itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline.resources.delta_store import MissingTableError
from anomaly_pipeline.resources.tweet_source import Tweet
from anomaly_pipeline.streaming.events import encode_tweet_event
from anomaly_pipeline.tables import DEAD_LETTER_EVENTS, HOURLY_TWEET_METRICS, TWEETS
from anomaly_pipeline_tests.conftest import read_table, utc

STREAM_TABLES = (TWEETS, HOURLY_TWEET_METRICS, DEAD_LETTER_EVENTS)


def publish(resources, ids, hour=10) -> None:
    resources["event_stream"].publish(
        [(str(i), encode_tweet_event(Tweet(i, utc(2026, 5, 1, hour, i % 60), 1, 0, 0, 0, "en"), "#Azure"))
         for i in ids]
    )


def run_engine(resources):
    return resources["stream_engine"].process_available(resources["event_stream"], resources["delta_store"])


def versions(resources) -> dict[str, int | None]:
    return {spec.name: resources["delta_store"].version(spec) for spec in STREAM_TABLES}


def test_the_first_run_creates_every_table_even_from_dead_letters_only(resources):
    resources["event_stream"].publish([("k", "not json")])
    run_engine(resources)
    assert all(resources["delta_store"].exists(spec) for spec in STREAM_TABLES)
    publish(resources, range(1, 4))
    run_engine(resources)
    assert read_table(resources, HOURLY_TWEET_METRICS)["tweet_count"].to_list() == [3]

    # dead_letter_events is only a log of rejected events: deleting it purges them
    shutil.rmtree(resources["delta_store"].table_uri(DEAD_LETTER_EVENTS))
    resources["event_stream"].publish([("k", "[]")])
    run_engine(resources)
    assert read_table(resources, DEAD_LETTER_EVENTS)["body"].to_list() == ["[]"]


@pytest.mark.parametrize("lost", [TWEETS, HOURLY_TWEET_METRICS], ids=lambda spec: spec.name)
def test_a_deleted_counted_table_stops_the_next_step_before_it_writes(resources, lost):
    stream, store = resources["event_stream"], resources["delta_store"]
    publish(resources, range(1, 61))
    run_engine(resources)
    shutil.rmtree(store.table_uri(lost))
    checkpoints, before = stream.load_checkpoints(), versions(resources)

    with pytest.raises(MissingTableError, match=f"'{lost.name}' is missing"):
        run_engine(resources)  # nothing new to read: the loss is still reported
    publish(resources, range(61, 71), hour=11)
    with pytest.raises(MissingTableError, match=f"'{lost.name}' is missing"):
        run_engine(resources)

    assert not Path(store.table_uri(lost)).exists()
    assert versions(resources) == before
    assert stream.load_checkpoints() == checkpoints


def test_the_metrics_asset_fails_naming_the_lost_table(resources, instance):
    publish(resources, range(1, 11))
    run_engine(resources)
    shutil.rmtree(resources["delta_store"].table_uri(HOURLY_TWEET_METRICS))
    result = dg.materialize([hourly_tweet_metrics], resources=resources, instance=instance,
                            partition_key=partition_key(utc(2026, 5, 1, 10)), raise_on_error=False)
    assert not result.success
    cause = result.get_step_failure_events()[0].step_failure_data.error.cause
    assert cause.cls_name == "MissingTableError" and "'hourly_tweet_metrics' is missing" in cause.message
    assert not resources["delta_store"].exists(HOURLY_TWEET_METRICS)
