"""`EventHubsStream` against fakes of the SDK clients (real `EventDataBatch` / `EventData`)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from anomaly_pipeline.assets.ingest import TWEET_CURSOR_KEY
from anomaly_pipeline.definitions import build_resources
from anomaly_pipeline.resources import event_hubs
from anomaly_pipeline.resources.delta_location import DeltaLocation
from anomaly_pipeline.resources.delta_state import DeltaCheckpointStore
from anomaly_pipeline.resources.event_hubs import (
    EventHubsConfigError,
    EventHubsError,
    EventHubsStream,
)
from anomaly_pipeline.resources.tweet_source import Tweet, snowflake_id
from anomaly_pipeline.settings import Settings
from anomaly_pipeline.streaming.events import encode_tweet_event
from anomaly_pipeline.tables import TWEETS
from anomaly_pipeline_tests.cloud.fake_event_hubs import FakeHub, bind

KEY = "c2VjcmV0LWtleS12YWx1ZS1ub3QtcmVhbA=="
CONNECTION = (
    "Endpoint=sb://anomaly-ns.servicebus.windows.net/;"
    f"SharedAccessKeyName=pipeline;SharedAccessKey={KEY}"
)


@pytest.fixture
def hub(monkeypatch):
    fake = FakeHub(name="tweets", partition_count=4)
    producer, consumer = bind(fake)
    monkeypatch.setattr(event_hubs, "EventHubProducerClient", producer)
    monkeypatch.setattr(event_hubs, "EventHubConsumerClient", consumer)
    return fake


def stream(tmp_path, **overrides) -> EventHubsStream:
    options = dict(connection_string=CONNECTION, eventhub_name="tweets",
                   checkpoint_store=checkpoints_under(tmp_path / "delta"), max_wait_seconds=5)
    options.update(overrides)
    return EventHubsStream(**options)


def checkpoints_under(delta_root) -> DeltaCheckpointStore:
    return DeltaCheckpointStore(location=DeltaLocation(root_uri=str(delta_root)))


def tweet_event(i: int, padding: int = 0) -> str:
    return json.dumps({"id": str(1861234567890123456 + i), "created_at": "2026-11-22T18:04:05.000Z",
                       "like_count": i % 5, "lang": "en", "query": "#Azure", "pad": "x" * padding},
                      separators=(",", ":"))


def drain(s: EventHubsStream, max_events: int = 100, group: str = "$Default") -> list:
    """Read until nothing is left, checkpointing after each read (as the stream step does)."""
    records = []
    while True:
        batch = s.read(s.load_checkpoints(group), max_events)
        if not batch:
            return records
        records.extend(batch)
        last: dict[str, int] = {}
        for record in batch:
            last[record.partition_id] = record.sequence_number
        s.save_checkpoints(last, group)


def test_batches_split_at_the_size_limit(hub, tmp_path):
    bodies = [tweet_event(i, padding=150) for i in range(40)]
    report = stream(tmp_path, max_batch_bytes=2048).publish([("tweets", b) for b in bodies])

    assert report.event_count == 40
    assert len(hub.sent_batches) > 1
    assert all(size <= 2048 for _, _, _, size in hub.sent_batches)
    assert sum(count for _, _, count, _ in hub.sent_batches) == 40
    # all in one partition, in publish order, sequence numbers 0..39
    (pid,) = {pid for pid, _, _, _ in hub.sent_batches}
    assert [s.body for s in hub.partitions[pid]] == bodies
    assert [s.sequence_number for s in hub.partitions[pid]] == list(range(40))


def test_default_batches_use_the_hubs_maximum(hub, tmp_path):
    hub.max_message_bytes = 4096
    stream(tmp_path).publish([(None, tweet_event(i, padding=300)) for i in range(30)])
    assert len(hub.sent_batches) > 1
    assert all(size <= 4096 for *_, size in hub.sent_batches)


def test_an_event_larger_than_a_batch_is_a_clear_error(hub, tmp_path):
    with pytest.raises(EventHubsError, match="does not fit"):
        stream(tmp_path, max_batch_bytes=1024).publish([("k", tweet_event(1, padding=2000))])


def test_partition_key_routing(hub, tmp_path):
    events = [(f"2026-11-22T{h:02d}", tweet_event(10 * h + i)) for i in range(5) for h in range(8)]
    stream(tmp_path).publish(events)

    placed: dict[str, set[str]] = defaultdict(set)
    for pid, log in hub.partitions.items():
        for stored in log:
            placed[stored.partition_key].add(pid)
    assert all(len(pids) == 1 for pids in placed.values())  # one key, one partition
    assert len({pid for pids in placed.values() for pid in pids}) > 1  # keys spread out
    for key in placed:  # per key, publish order is kept
        (pid,) = placed[key]
        assert [s.body for s in hub.partitions[pid] if s.partition_key == key] == [
            b for k, b in events if k == key]
    assert {k for _, k, _, _ in hub.sent_batches} == set(placed)  # batches carry their key


def test_all_events_delivered_exactly_once_through_checkpoints(hub, tmp_path):
    s = stream(tmp_path)
    published = [tweet_event(i) for i in range(450)]
    s.publish([(f"hour-{i % 7}", body) for i, body in enumerate(published[:300])])
    first = drain(s, max_events=64)
    s.publish([(None, body) for body in published[300:]])  # no key: round robin
    second = drain(s, max_events=64)

    bodies = [r.body for r in first + second]
    assert sorted(bodies) == sorted(published) and len(set(bodies)) == 450
    for records in (first, second):
        per_partition = defaultdict(list)
        for record in records:
            per_partition[record.partition_id].append(record.sequence_number)
        assert all(seqs == sorted(seqs) for seqs in per_partition.values())
    keyed = [r for r in first if r.partition_key is not None]
    assert keyed and all(r.partition_key.startswith("hour-") for r in keyed)
    assert all(r.enqueued_time.tzinfo is not None for r in first)


def test_read_is_bounded_and_returns_per_partition_prefixes(hub, tmp_path):
    s = stream(tmp_path)
    s.publish([(f"k{i % 4}", tweet_event(i)) for i in range(200)])
    started = time.monotonic()
    records = s.read({}, max_events=50)
    assert len(records) == 50
    assert time.monotonic() - started < 4  # stops at max_events, not at max_wait_seconds
    for pid in {r.partition_id for r in records}:
        seqs = [r.sequence_number for r in records if r.partition_id == pid]
        assert seqs == list(range(len(seqs)))  # a prefix from the start of the partition

    started = time.monotonic()
    everything = s.read({}, max_events=10_000)
    assert len(everything) == 200
    assert time.monotonic() - started < 4  # stops when every partition reached its snapshot


def test_consumer_resumes_after_checkpoint(hub, tmp_path):
    s = stream(tmp_path)
    s.publish([("a", tweet_event(i)) for i in range(10)])
    (pid,) = [p for p, log in hub.partitions.items() if log]
    assert s.load_checkpoints() == {p: -1 for p in hub.partitions}

    first = s.read(s.load_checkpoints(), max_events=4)
    assert [r.sequence_number for r in first] == [0, 1, 2, 3]
    # crash before the Delta commit: nothing saved, the same events come again
    assert [r.sequence_number for r in s.read(s.load_checkpoints(), 4)] == [0, 1, 2, 3]
    s.save_checkpoints({pid: 3})

    restarted = stream(tmp_path)  # a new process: checkpoints come from the Delta table
    assert restarted.load_checkpoints()[pid] == 3
    rest = restarted.read(restarted.load_checkpoints(), max_events=100)
    assert [r.sequence_number for r in rest] == list(range(4, 10))
    call = hub.receive_calls[-1]
    assert call["partition_id"] == pid
    assert call["starting_position"] == 3 and call["starting_position_inclusive"] is False
    assert hub.receive_calls[0]["starting_position"] == "-1"  # no checkpoint: from the start

    restarted.save_checkpoints({pid: 1})  # a stale writer never moves a checkpoint back
    assert restarted.load_checkpoints()[pid] == 3
    assert restarted.load_checkpoints("databricks")[pid] == -1  # groups are independent


def test_lag(hub, tmp_path):
    s = stream(tmp_path)
    assert s.lag() == {p: 0 for p in hub.partitions}
    s.publish([("a", tweet_event(i)) for i in range(12)] + [("b", tweet_event(i)) for i in range(5)])
    lag = s.lag()
    assert sum(lag.values()) == 17
    pid_a = next(p for p, log in hub.partitions.items() if log and log[0].partition_key == "a")
    s.save_checkpoints({pid_a: 9})
    assert s.lag()[pid_a] == (12 if hub.route("a") != hub.route("b") else 17) - 10
    hub.retained_from[pid_a] = len(hub.partitions[pid_a])  # retention expired everything
    assert s.lag()[pid_a] == 0


def test_partition_ids_and_sdk_client_options(hub, tmp_path):
    s = stream(tmp_path, consumer_group="stream-engine", retry_total=5)
    assert s.partition_ids() == ["0", "1", "2", "3"]
    s.publish([("k", tweet_event(1))])
    consumer, producer = hub.client_kwargs
    assert consumer == {"kind": "EventHubConsumerClient", "consumer_group": "stream-engine",
                        "eventhub_name": "tweets", "retry_total": 5}
    assert producer == {"kind": "EventHubProducerClient", "eventhub_name": "tweets",
                        "retry_total": 5}


@pytest.mark.parametrize("bad", ["", "   ", "not a connection string",
                                 "Endpoint=sb://anomaly-ns.servicebus.windows.net/;"
                                 f"SharedAccessKey={KEY}"])
def test_bad_connection_string_fails_fast_naming_the_variable(hub, tmp_path, bad):
    s = stream(tmp_path, connection_string=bad)
    for call in (s.partition_ids, lambda: s.publish([("k", "{}")]), s.lag):
        with pytest.raises(EventHubsConfigError) as raised:
            call()
        assert "EVENTHUB_CONNECTION_STRING" in str(raised.value)
        assert KEY not in str(raised.value)
        if bad.strip():
            assert bad not in str(raised.value)
    assert hub.client_kwargs == []  # no client was built


def test_entity_path_for_another_hub_is_rejected(hub, tmp_path):
    s = stream(tmp_path, connection_string=CONNECTION + ";EntityPath=other")
    with pytest.raises(EventHubsConfigError, match="EVENTHUB_NAME"):
        s.partition_ids()
    assert stream(tmp_path, connection_string=CONNECTION + ";EntityPath=tweets").partition_ids()


def test_connection_string_never_in_repr(hub, tmp_path, monkeypatch):
    assert KEY not in repr(stream(tmp_path)) and KEY not in str(stream(tmp_path))
    monkeypatch.setenv("EVENTHUB_CONNECTION_STRING", CONNECTION)
    resource = EventHubsStream(connection_string=dg.EnvVar("EVENTHUB_CONNECTION_STRING"),
                               eventhub_name="tweets",
                               checkpoint_store=checkpoints_under(tmp_path / "delta"))
    with dg.build_resources({"event_stream": resource}) as built:
        assert KEY not in repr(built.event_stream)
        assert built.event_stream.partition_ids() == ["0", "1", "2", "3"]
    monkeypatch.setenv("EVENTHUB_CONNECTION_STRING", "garbage")
    with pytest.raises(Exception) as raised:
        with dg.build_resources({"event_stream": resource}):
            pass
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any("EVENTHUB_CONNECTION_STRING" in text for text in chain)


def test_cloud_state_survives_the_host(hub, tmp_path, monkeypatch):
    """Two machines (or one container restarted on a fresh disk): each its own DATA_DIR, one
    DELTA_ROOT (a local directory standing in for abfss://). The second resumes exactly where
    the first stopped: same tweet cursor, same checkpoints, nothing read twice or skipped."""
    monkeypatch.setenv("EVENTHUB_CONNECTION_STRING", CONNECTION)
    shared_root = tmp_path / "shared" / "delta"

    def machine(name: str) -> dict:
        return build_resources(Settings.from_env({
            "EVENT_STREAM": "eventhubs", "EVENTHUB_NAME": "tweets", "DATA_DIR": str(tmp_path / name),
            "DELTA_ROOT": str(shared_root)}))  # fmt: skip

    start = datetime.now(timezone.utc) - timedelta(hours=2)
    tweets = [Tweet(snowflake_id(int((start + timedelta(seconds=i)).timestamp() * 1000)),
                    start + timedelta(seconds=i), i % 3, 0, 0, 0, "en") for i in range(40)]
    events = [(str(t.id), encode_tweet_event(t, "#Azure")) for t in tweets]

    with dg.build_resources(machine("first")) as first:
        first.event_stream.publish(events[:30])
        assert first.stream_engine.process_available(first.event_stream, first.delta_store).events_read == 30
        first.pipeline_state.set(TWEET_CURSOR_KEY, str(tweets[29].id))

    with dg.build_resources(machine("second")) as second:
        assert second.pipeline_state.get(TWEET_CURSOR_KEY) == str(tweets[29].id)
        assert sum(second.event_stream.lag().values()) == 0
        second.event_stream.publish(events[30:])
        assert second.stream_engine.process_available(second.event_stream, second.delta_store).events_read == 10
        stored = second.delta_store.scan(TWEETS).collect()
    assert sorted(stored["tweet_id"].to_list()) == [t.id for t in tweets]
    assert not list(tmp_path.glob("*/**/*.sqlite"))  # no stream state on either machine's disk


def test_a_body_that_is_not_utf8_becomes_a_record_for_the_dead_letter_table():
    from anomaly_pipeline.resources.event_hubs import _to_record
    from anomaly_pipeline.streaming.parse import parse_events
    from anomaly_pipeline_tests.cloud.fake_event_hubs import Stored, _received

    event = _received(Stored(0, 0, "placeholder", 1_700_000_000_000, "1"))
    event.raw_amqp_message._data_body = [b'{"id": "1", "created_at": "\xff\xfe"}']  # another producer's bytes
    assert event.body_as_str  # the SDK's own decoding of it raises; the record must not
    record = _to_record("0", event)
    parsed = parse_events([record])
    assert parsed.tweets.is_empty()
    assert parsed.dead_letters["reason"].to_list() == ["body is not valid UTF-8"]
