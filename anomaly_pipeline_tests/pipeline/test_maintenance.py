"""Daily upkeep compacts and vacuums the tables without changing their content, and trims only
events every consumer has processed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from deltalake import DeltaTable

from anomaly_pipeline.maintenance import storage_maintenance_job
from anomaly_pipeline.streaming.events import encode_tweet_event
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS, TWEETS
from anomaly_pipeline_tests.conftest import read_table, utc


def test_maintenance_compacts_tables_and_keeps_their_content(resources, instance):
    source, stream = resources["tweet_source"], resources["event_stream"]
    engine, store = resources["stream_engine"], resources["delta_store"]
    start = utc(2026, 4, 1)
    for hour in range(12):  # many small streaming runs, as a live day produces
        begin = start + timedelta(hours=hour)
        tweets = source.fetch_interval(begin, begin + timedelta(hours=1))
        stream.publish([(str(t.id), encode_tweet_event(t, source.query)) for t in tweets])
        engine.process_available(stream, store)
    before = {spec.name: read_table(resources, spec).sort(spec.merge_key) for spec in (TWEETS, HOURLY_TWEET_METRICS)}
    files_before = len(DeltaTable(store.table_uri(HOURLY_TWEET_METRICS)).file_uris())

    result = storage_maintenance_job.execute_in_process(
        instance=instance,
        resources={"delta_store": store, "event_stream": stream},
        run_config={"ops": {name: {"config": {"vacuum_retention_hours": 0, "event_retention_hours": 0}}
                            for name in ("compact_and_vacuum_tables", "apply_event_retention")}},
    )  # fmt: skip
    assert result.success
    assert len(DeltaTable(store.table_uri(HOURLY_TWEET_METRICS)).file_uris()) < files_before
    for spec in (TWEETS, HOURLY_TWEET_METRICS):
        assert read_table(resources, spec).sort(spec.merge_key).equals(before[spec.name])
    assert sum(stream.lag().values()) == 0


def test_event_retention_never_deletes_unconsumed_events(resources):
    stream = resources["event_stream"]
    stream.publish([(str(i), f'{{"id": "{i}"}}') for i in range(40)])
    assert stream.delete_consumed(datetime.now(timezone.utc) + timedelta(hours=1)) == 0  # no consumer yet
    checkpoints = stream.load_checkpoints()
    consumed = {pid: (last // 2 if last >= 0 else -1) for pid, last in stream.last_sequence_numbers().items()}
    stream.save_checkpoints(consumed)
    deleted = stream.delete_consumed(datetime.now(timezone.utc) + timedelta(hours=1))
    assert deleted == sum(position + 1 for position in consumed.values())
    remaining = stream.read(after=consumed, max_events=100)
    assert len(remaining) == 40 - deleted
    assert checkpoints == {pid: -1 for pid in stream.partition_ids()}
