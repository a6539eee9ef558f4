"""LocalEventLog: partitioning, sequence numbers, reads, checkpoints, lag, atomicity, processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from anomaly_pipeline.resources.local_event_log import LocalEventLog
from anomaly_pipeline.streaming.events import is_valid_text
from anomaly_pipeline_tests.resources.raw_producer import publish_raw

N_PRODUCED = 6_000  # per producer in the two-process test
BATCH = 250


@pytest.fixture
def log(tmp_path: Path) -> LocalEventLog:
    return LocalEventLog(path=str(tmp_path / "nested" / "events.sqlite"))


def test_partition_keys_are_stable(log):
    # crc32-based, so these hold in every process and Python version.
    assert [log.partition_for_key(k) for k in ("user-1", "tweet-42", "#Azure")] == ["0", "1", "2"]
    report = log.publish([("#Azure", "a"), ("#Azure", "b"), ("user-1", "c")])
    assert report.event_count == 3
    assert report.last_sequence_numbers == {"2": 1, "0": 0}
    events = log.read({}, 10)
    assert [(e.partition_id, e.sequence_number, e.body, e.partition_key) for e in events] == [
        ("0", 0, "c", "user-1"),
        ("2", 0, "a", "#Azure"),
        ("2", 1, "b", "#Azure"),
    ]
    assert all(e.enqueued_time.tzinfo is not None for e in events)


def test_sequence_numbers_are_contiguous_per_partition(log):
    for batch in range(5):
        log.publish([(f"k{i % 13}", f"{batch}-{i}") for i in range(97)])
    events = log.read({}, 10_000)
    assert len(events) == 5 * 97
    by_partition = defaultdict(list)
    for event in events:
        by_partition[event.partition_id].append(event.sequence_number)
    assert set(by_partition) == {"0", "1", "2", "3"}
    for sequences in by_partition.values():
        assert sequences == list(range(len(sequences)))
    assert log.last_sequence_numbers() == {p: len(s) - 1 for p, s in by_partition.items()}


def test_events_without_key_are_spread_round_robin(log):
    log.publish([(None, str(i)) for i in range(10)])
    log.publish([(None, str(i)) for i in range(10, 12)])
    assert log.last_sequence_numbers() == {"0": 2, "1": 2, "2": 2, "3": 2}


def test_read_after_positions_is_fair_and_ordered(log):
    log.publish([(str(i), f"e{i}") for i in range(400)])  # ~100 per partition
    last = log.last_sequence_numbers()
    first = log.read({}, 40)
    counts = defaultdict(int)
    for event in first:
        counts[event.partition_id] += 1
    assert dict(counts) == {"0": 10, "1": 10, "2": 10, "3": 10}

    # Partition "0" almost drained: its unused share goes to the others.
    after = {"0": last["0"] - 2, "1": -1}
    batch = log.read(after, 40)
    assert len(batch) == 40
    assert [e.sequence_number for e in batch if e.partition_id == "0"] == [last["0"] - 1, last["0"]]
    assert log.read({p: s for p, s in last.items()}, 100) == []
    bodies, positions = log.read_bodies(after, 40)
    assert bodies == [e.body for e in batch]
    assert positions["0"] == last["0"] and positions["1"] > -1
    columns = log.read_columns(after, 40)
    assert columns["body"] == bodies
    assert list(zip(columns["partition_id"], columns["sequence_number"])) == [
        (e.partition_id, e.sequence_number) for e in batch
    ]
    assert columns["enqueued_ms"][0] == int(batch[0].enqueued_time.timestamp() * 1000 + 0.5)

    with pytest.raises(ValueError, match="unknown partition"):
        log.read({"7": 0}, 1)


def test_checkpoints_are_durable_and_drive_lag(log, tmp_path):
    log.publish([(str(i), "x") for i in range(100)])
    last = log.last_sequence_numbers()
    assert log.load_checkpoints() == {"0": -1, "1": -1, "2": -1, "3": -1}
    assert log.lag() == {p: s + 1 for p, s in last.items()}

    log.save_checkpoints({"0": last["0"], "1": 4})
    log.save_checkpoints({"2": 0}, consumer_group="other")

    reopened = LocalEventLog(path=log.path)
    assert reopened.load_checkpoints() == {"0": last["0"], "1": 4, "2": -1, "3": -1}
    assert reopened.load_checkpoints("other") == {"0": -1, "1": -1, "2": 0, "3": -1}
    assert reopened.lag() == {"0": 0, "1": last["1"] - 4, "2": last["2"] + 1, "3": last["3"] + 1}

    resumed = reopened.read(reopened.load_checkpoints(), 1_000)
    assert all(e.partition_id != "0" for e in resumed)
    assert min(e.sequence_number for e in resumed if e.partition_id == "1") == 5
    assert len(resumed) == sum(reopened.lag().values())

    with pytest.raises(ValueError, match="outside"):
        reopened.save_checkpoints({"3": last["3"] + 1})
    with pytest.raises(ValueError, match="unknown partition"):
        reopened.save_checkpoints({"x": 0})


def test_partition_count_is_fixed_at_creation(log):
    log.publish([("a", "b")])
    with pytest.raises(ValueError, match="partition_count"):
        LocalEventLog(path=log.path, partition_count=8).publish([("a", "b")])


def test_publish_is_all_or_nothing(log):
    log.publish([(str(i), "ok") for i in range(20)])
    before = log.last_sequence_numbers()
    # A failure inside SQLite after part of the batch is inserted (a trigger aborts on "boom").
    with sqlite3.connect(log.path) as connection:
        connection.execute(
            "CREATE TRIGGER fail_on_boom BEFORE INSERT ON log_events WHEN NEW.body = 'boom'"
            " BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        )
    batch = [(str(i), "fine") for i in range(50)] + [("k", "boom")] + [("z", "late")]
    with pytest.raises(sqlite3.IntegrityError, match="boom refused"):
        log.publish(batch)
    assert log.last_sequence_numbers() == before
    assert len(log.read({}, 1_000)) == 20
    with pytest.raises(TypeError):
        log.publish([("a", "ok"), ("b", b"bytes")])
    assert len(log.read({}, 1_000)) == 20
    # Sequence numbers continue without a gap after the failures.
    report = log.publish([("0", "after")])
    (partition, sequence), = report.last_sequence_numbers.items()
    assert sequence == before[partition] + 1


def _produce(path: str, producer: int) -> None:
    log = LocalEventLog(path=path)
    for start in range(0, N_PRODUCED, BATCH):
        log.publish(
            [(f"p{producer}-k{i % 7}", json.dumps([producer, i])) for i in range(start, start + BATCH)]
        )


def _consume(path: str, expected: int, out: str) -> None:
    import time

    log = LocalEventLog(path=path)
    seen, deadline = [], time.monotonic() + 60
    while len(seen) < expected and time.monotonic() < deadline:
        checkpoints = log.load_checkpoints("consumer")
        events = log.read(checkpoints, 333)
        if not events:
            time.sleep(0.005)
            continue
        seen.extend((e.partition_id, e.sequence_number, e.body) for e in events)
        positions = {}
        for event in events:
            positions[event.partition_id] = event.sequence_number
        log.save_checkpoints(positions, "consumer")
    Path(out).write_text(json.dumps(seen))


def test_producers_and_consumer_in_other_processes_lose_and_duplicate_nothing(tmp_path):
    path = str(tmp_path / "events.sqlite")
    out = str(tmp_path / "seen.json")
    LocalEventLog(path=path).partition_ids()
    # fork: fast on Linux (no re-import); each process still opens its own SQLite connection.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    consumer = context.Process(target=_consume, args=(path, 2 * N_PRODUCED, out))
    producers = [context.Process(target=_produce, args=(path, p)) for p in (1, 2)]
    consumer.start()
    for producer in producers:
        producer.start()
    for process in (*producers, consumer):
        process.join(90)
        assert process.exitcode == 0

    seen = json.loads(Path(out).read_text())
    assert len(seen) == 2 * N_PRODUCED
    positions = [(p, s) for p, s, _ in seen]
    assert len(set(positions)) == len(positions), "an event was delivered twice"
    bodies = [tuple(json.loads(b)) for _, _, b in seen]
    assert sorted(bodies) == sorted((p, i) for p in (1, 2) for i in range(N_PRODUCED))
    by_partition = defaultdict(list)
    for partition, sequence, body in seen:
        by_partition[partition].append((sequence, tuple(json.loads(body))))
    for events in by_partition.values():
        assert [s for s, _ in events] == list(range(len(events)))
        # Within a partition, each producer's events keep their publishing order.
        for producer in (1, 2):
            order = [i for _, (p, i) in events if p == producer]
            assert order == sorted(order)
    log = LocalEventLog(path=path)
    assert log.lag("consumer") == {"0": 0, "1": 0, "2": 0, "3": 0}


def test_bodies_that_are_not_utf8_are_read_not_raised(log):
    """Another producer stored bytes (TEXT that is not UTF-8, or BLOBs): every read path returns
    them, invalid bytes kept as surrogate escapes (the stream step dead-letters those)."""
    log.publish([("a", "before")])
    partition = int(log.partition_for_key("a"))
    publish_raw(log, partition, [b'{"lang": "\xff"}'], as_blob=False)
    publish_raw(log, partition, [b"\xc3\x28", '{"ok": "\u00e9"}'.encode()], as_blob=True)
    log.publish([("a", "after")])

    bodies = [event.body for event in log.read({}, 10)]
    assert bodies == ["before", '{"lang": "\udcff"}', "\udcc3(", '{"ok": "\u00e9"}', "after"]
    assert [is_valid_text(body) for body in bodies] == [True, False, False, True, True]
    assert log.read_bodies({}, 10)[0] == bodies
    assert log.read_columns({}, 10)["body"] == bodies
