"""Fakes of `EventHubProducerClient` / `EventHubConsumerClient` over an in-memory hub.

They stand in for the SDK clients only: batches are the SDK's real `EventDataBatch` (which
measures each event's AMQP-encoded size and raises `ValueError` when full), received events are
real `EventData` carrying the service's annotations (sequence number, offset, enqueued time,
partition key), callbacks get a real `PartitionContext`. Like the service, the hub assigns each
partition increasing sequence numbers from 0, hashes a partition key to one partition, and
rejects a batch larger than its maximum message size. `receive_batch` blocks, as the SDK's does,
until the client is closed.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

from azure.eventhub import EventData, EventDataBatch, PartitionContext, parse_connection_string
from azure.eventhub._constants import (
    PROP_OFFSET,
    PROP_PARTITION_KEY,
    PROP_SEQ_NUMBER,
    PROP_TIMESTAMP,
)

STANDARD_TIER_MAX_MESSAGE_BYTES = 1024 * 1024


@dataclass
class Stored:
    sequence_number: int
    offset: int
    body: str
    enqueued_ms: int
    partition_key: str | None


@dataclass
class FakeHub:
    name: str
    partition_count: int = 4
    max_message_bytes: int = STANDARD_TIER_MAX_MESSAGE_BYTES
    partitions: dict[str, list[Stored]] = field(default_factory=dict)
    sent_batches: list[tuple[str, str | None, int, int]] = field(default_factory=list)
    receive_calls: list[dict] = field(default_factory=list)
    client_kwargs: list[dict] = field(default_factory=list)
    retained_from: dict[str, int] = field(default_factory=dict)  # expired events (retention)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _round_robin: int = 0

    def __post_init__(self):
        self.partitions = {str(i): [] for i in range(self.partition_count)}

    def route(self, partition_key: str | None) -> str:
        if partition_key is None:
            self._round_robin += 1
            return str(self._round_robin % self.partition_count)
        return str(zlib.crc32(partition_key.encode()) % self.partition_count)

    def append(self, pid: str, body: str, partition_key: str | None) -> None:
        log = self.partitions[pid]
        offset = log[-1].offset + 1000 if log else 0
        now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
        log.append(Stored(len(log), offset, body, now_ms, partition_key))

    def visible(self, pid: str) -> list[Stored]:
        return self.partitions[pid][self.retained_from.get(pid, 0):]

    def bodies(self) -> list[str]:
        return [s.body for pid in self.partitions for s in self.partitions[pid]]


def _received(stored: Stored) -> EventData:
    event = EventData(stored.body)
    annotations = event.raw_amqp_message.annotations
    annotations[PROP_SEQ_NUMBER] = stored.sequence_number
    annotations[PROP_OFFSET] = str(stored.offset).encode()
    annotations[PROP_TIMESTAMP] = stored.enqueued_ms
    if stored.partition_key is not None:
        annotations[PROP_PARTITION_KEY] = stored.partition_key.encode()
    return event


class _FakeClientBase:
    hub: FakeHub  # set by `bind`

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.closed = threading.Event()

    @classmethod
    def from_connection_string(cls, conn_str: str, **kwargs):
        properties = parse_connection_string(conn_str)  # the SDK's own validation
        assert kwargs["eventhub_name"] == cls.hub.name
        cls.hub.client_kwargs.append({"kind": cls.__name__, **kwargs})
        client = cls(**kwargs)
        client.namespace = properties.fully_qualified_namespace
        return client

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.closed.set()

    def get_partition_ids(self) -> list[str]:
        return list(self.hub.partitions)

    def get_partition_properties(self, partition_id: str) -> dict:
        with self.hub.lock:
            log = self.hub.visible(partition_id)
            full = self.hub.partitions[partition_id]
            return {
                "eventhub_name": self.hub.name,
                "id": partition_id,
                "beginning_sequence_number": log[0].sequence_number if log else len(full),
                "last_enqueued_sequence_number": full[-1].sequence_number if full else -1,
                "last_enqueued_offset": str(full[-1].offset) if full else "-1",
                "last_enqueued_time_utc": None,
                "is_empty": not log,
            }


class FakeProducerClient(_FakeClientBase):
    def create_batch(self, *, partition_id=None, partition_key=None, max_size_in_bytes=None):
        if max_size_in_bytes and max_size_in_bytes > self.hub.max_message_bytes:
            raise ValueError(
                f"Max message size: {max_size_in_bytes} is too large, acceptable max batch size "
                f"is: {self.hub.max_message_bytes} bytes."
            )
        return EventDataBatch(
            max_size_in_bytes=max_size_in_bytes or self.hub.max_message_bytes,
            partition_id=partition_id,
            partition_key=partition_key,
        )

    def send_batch(self, event_data_batch, *, timeout=None) -> None:
        assert isinstance(event_data_batch, EventDataBatch), "the pipeline sends batches only"
        assert not self.closed.is_set()
        if event_data_batch.size_in_bytes > self.hub.max_message_bytes:
            raise ValueError("batch exceeds the hub's maximum message size")
        key = event_data_batch._partition_key
        with self.hub.lock:
            pid = event_data_batch._partition_id or self.hub.route(key)
            for event in event_data_batch._internal_events:
                self.hub.append(pid, event.body_as_str(), key)
            self.hub.sent_batches.append(
                (pid, key, len(event_data_batch), event_data_batch.size_in_bytes))


class FakeConsumerClient(_FakeClientBase):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.receiving: set[str | None] = set()

    def receive_batch(self, on_event_batch, *, max_batch_size=300, max_wait_time=None,
                      partition_id=None, starting_position=None,
                      starting_position_inclusive=False, on_error=None, **kwargs):
        assert partition_id is not None, "the fake models single-partition receivers only"
        if partition_id in self.receiving:
            raise ValueError(f"This consumer client is already receiving events from partition "
                             f"{partition_id} for consumer group {self.kwargs['consumer_group']}.")
        self.receiving.add(partition_id)
        self.hub.receive_calls.append({
            "partition_id": partition_id, "starting_position": starting_position,
            "starting_position_inclusive": starting_position_inclusive,
            "max_batch_size": max_batch_size, "max_wait_time": max_wait_time,
            "consumer_group": self.kwargs["consumer_group"], **kwargs})
        context = PartitionContext(self.namespace, self.hub.name, self.kwargs["consumer_group"],
                                   partition_id)
        with self.hub.lock:
            position = self._first_index(partition_id, starting_position,
                                         starting_position_inclusive)
        while not self.closed.is_set():
            with self.hub.lock:
                log = self.hub.partitions[partition_id]
                batch = [_received(s) for s in log[position:position + max_batch_size]]
            if batch:
                position += len(batch)
                on_event_batch(context, batch)
            elif self.closed.wait(max_wait_time or 0.05) or max_wait_time is None:
                continue
            else:
                on_event_batch(context, [])

    def _first_index(self, pid: str, position, inclusive: bool) -> int:
        log = self.hub.partitions[pid]
        first = self.hub.retained_from.get(pid, 0)
        if position is None or position == "@latest":
            return len(log)
        if position == "-1":
            return first
        if isinstance(position, int):  # a sequence number
            index = position if inclusive else position + 1
            return max(first, index)
        raise AssertionError(f"unexpected starting position {position!r}")


def bind(hub: FakeHub) -> tuple[type, type]:
    """Client classes bound to `hub`, to substitute for the SDK's."""
    producer = type("EventHubProducerClient", (FakeProducerClient,), {"hub": hub})
    consumer = type("EventHubConsumerClient", (FakeConsumerClient,), {"hub": hub})
    return producer, consumer
