"""`EventHubsStream`: the event stream on Azure Event Hubs (azure-eventhub SDK).

Producer: events are grouped by partition key and sent in `EventDataBatch`es created with that
key (the service hashes the key to a partition, so one key always lands in one partition); a
batch that reports full (`ValueError` from `add`) is sent and a new one started, so no batch
exceeds the hub's (or the configured) maximum size. The SDK retries each send (`retry_total`).
Delivery is at least once: if a send fails after earlier batches went out, the caller republishes
and the downstream MERGE on the tweet id absorbs the duplicates.

Consumer (used by the embedded stream engine; Databricks reads the hub itself): `read` snapshots
each partition's last enqueued sequence number, receives from every partition with something new
(`receive_batch(partition_id=..., starting_position=<checkpoint>,
starting_position_inclusive=False)`, one worker thread per partition on one client) and stops as
soon as every partition reached its snapshot, `max_events` were read, or `max_wait_seconds`
passed. What it returns is always a per-partition prefix, in sequence order, so checkpointing the
last returned sequence number never skips an event.

Checkpoints (last fully processed sequence number per partition and consumer group) live in the
`eventhub_checkpoints` Delta table under the Delta root (`checkpoint_store`, see `delta_state.py`),
where another machine finds them; the caller saves them only after the Delta commit.

The connection string comes from `EVENTHUB_CONNECTION_STRING` (definitions pass
`dagster.EnvVar`); it is kept out of `repr` and of every message this module produces.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Literal

import dagster as dg
from azure.eventhub import (
    EventData,
    EventHubConsumerClient,
    EventHubProducerClient,
    parse_connection_string,
)
from pydantic import Field

from anomaly_pipeline.resources.delta_state import DeltaCheckpointStore
from anomaly_pipeline.streaming.events import decode_body
from anomaly_pipeline.resources.event_stream import (
    DEFAULT_CONSUMER_GROUP,
    EventRecord,
    EventStream,
    PublishReport,
)

CONNECTION_VARIABLE = "EVENTHUB_CONNECTION_STRING"
RECEIVE_BATCH_SIZE = 300  # the SDK's default prefetch / batch size
JOIN_SECONDS = 10.0

log = logging.getLogger(__name__)


class EventHubsConfigError(ValueError):
    """The Event Hubs configuration is unusable; the message names the variable, never its value."""


class EventHubsError(RuntimeError):
    """Publishing or reading failed for good."""


class EventHubsStream(EventStream):
    """Azure Event Hubs as the pipeline's event stream, with its checkpoints in Delta."""

    connection_string: str = Field(
        repr=False,
        description=f"Namespace or hub SAS connection string (from env {CONNECTION_VARIABLE}).",
    )
    eventhub_name: str = Field(description="The event hub (entity) inside the namespace.")
    consumer_group: str = Field(
        default=DEFAULT_CONSUMER_GROUP, description="Consumer group `read` receives with."
    )
    checkpoint_store: DeltaCheckpointStore = Field(
        description="Per-partition consumer checkpoints, in a Delta table next to the data."
    )
    max_wait_seconds: float = Field(
        default=10.0, description="Upper bound on one `read` call's receive time."
    )
    retry_total: int = Field(default=3, description="SDK retries per operation (send, receive).")
    max_batch_bytes: int | None = Field(
        default=None,
        description="Batch size limit; default: the hub's maximum message size (1 MB on "
        "Standard).",
    )

    # ----------------------------------------------------------------- clients

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._checked_connection_string()

    def _checked_connection_string(self) -> str:
        value = (self.connection_string or "").strip()
        if not value:
            raise EventHubsConfigError(
                f"Event Hubs needs a connection string: set {CONNECTION_VARIABLE} (Azure portal > "
                "Event Hubs namespace > Shared access policies > a policy > Connection string)."
            )
        try:
            properties = parse_connection_string(value)
        except (ValueError, TypeError) as error:
            reason = str(error) if value not in str(error) else "malformed"
            raise EventHubsConfigError(
                f"{CONNECTION_VARIABLE} is not a valid Event Hubs connection string ({reason}); "
                "expected Endpoint=sb://<namespace>.servicebus.windows.net/;"
                "SharedAccessKeyName=<policy>;SharedAccessKey=<key>"
            ) from None
        if properties.eventhub_name and properties.eventhub_name != self.eventhub_name:
            raise EventHubsConfigError(
                f"The EntityPath in {CONNECTION_VARIABLE} names a different event hub than "
                f"EVENTHUB_NAME={self.eventhub_name!r}; use the namespace-level connection "
                "string or the hub's own policy"
            )
        return value

    def _client(
        self, kind: Literal["producer", "consumer"]
    ) -> EventHubProducerClient | EventHubConsumerClient:
        """The one place SDK clients are built (tests substitute the client classes)."""
        connection_string = self._checked_connection_string()
        if kind == "producer":
            return EventHubProducerClient.from_connection_string(
                connection_string, eventhub_name=self.eventhub_name, retry_total=self.retry_total
            )
        return EventHubConsumerClient.from_connection_string(
            connection_string,
            consumer_group=self.consumer_group,
            eventhub_name=self.eventhub_name,
            retry_total=self.retry_total,
        )

    # ----------------------------------------------------------------- EventStream

    def partition_ids(self) -> list[str]:
        with self._client("consumer") as consumer:
            return list(consumer.get_partition_ids())

    def publish(self, events: list[tuple[str | None, str]]) -> PublishReport:
        """Send every event; returns the count. Event Hubs does not tell a (non-idempotent)
        producer the sequence numbers it assigned, so `last_sequence_numbers` stays empty."""
        groups: OrderedDict[str | None, list[str]] = OrderedDict()
        for key, body in events:
            groups.setdefault(key, []).append(body)
        sent = 0
        if not groups:
            return PublishReport(event_count=0)
        with self._client("producer") as producer:
            for key, bodies in groups.items():
                sent += self._send_group(producer, key, bodies)
        return PublishReport(event_count=sent)

    def _send_group(self, producer: EventHubProducerClient, key: str | None, bodies: list[str]) -> int:
        options: dict[str, Any] = {}
        if key is not None:
            options["partition_key"] = key
        if self.max_batch_bytes:
            options["max_size_in_bytes"] = self.max_batch_bytes
        sent = 0
        batch = producer.create_batch(**options)
        for body in bodies:
            try:
                batch.add(EventData(body))
                continue
            except ValueError:
                if len(batch) == 0:
                    raise _too_large(body, batch) from None
            producer.send_batch(batch)  # full: send it and start the next one
            sent += len(batch)
            batch = producer.create_batch(**options)
            try:
                batch.add(EventData(body))
            except ValueError:
                raise _too_large(body, batch) from None
        if len(batch):
            producer.send_batch(batch)
            sent += len(batch)
        return sent

    def read(self, after: dict[str, int], max_events: int) -> list[EventRecord]:
        if max_events <= 0:
            return []
        with self._client("consumer") as consumer:
            targets: dict[str, int] = {}
            for pid in consumer.get_partition_ids():
                properties = consumer.get_partition_properties(pid)
                last = properties["last_enqueued_sequence_number"]
                if not properties["is_empty"] and last > after.get(pid, -1):
                    targets[pid] = last
            if not targets:
                return []
            return _PartitionReader(consumer, targets, after, max_events, self).run()

    def load_checkpoints(self, consumer_group: str = DEFAULT_CONSUMER_GROUP) -> dict[str, int]:
        positions = {pid: -1 for pid in self.partition_ids()}
        positions.update(self._stored_checkpoints(consumer_group))
        return positions

    def save_checkpoints(
        self, positions: dict[str, int], consumer_group: str = DEFAULT_CONSUMER_GROUP
    ) -> None:
        """Record `positions`; a checkpoint never moves backwards (a late, stale writer loses)."""
        self.checkpoint_store.save(self.eventhub_name, consumer_group, positions)

    def lag(self, consumer_group: str = DEFAULT_CONSUMER_GROUP) -> dict[str, int]:
        stored = self._stored_checkpoints(consumer_group)
        lags: dict[str, int] = {}
        with self._client("consumer") as consumer:
            for pid in consumer.get_partition_ids():
                properties = consumer.get_partition_properties(pid)
                if properties["is_empty"]:
                    lags[pid] = 0
                    continue
                done = max(stored.get(pid, -1), properties["beginning_sequence_number"] - 1)
                lags[pid] = max(0, properties["last_enqueued_sequence_number"] - done)
        return lags

    def _stored_checkpoints(self, consumer_group: str) -> dict[str, int]:
        return self.checkpoint_store.load(self.eventhub_name, consumer_group)


class _PartitionReader:
    """One bounded read: a `receive_batch` worker per partition, stopped by closing the client."""

    def __init__(self, consumer, targets: dict[str, int], after: dict[str, int],
                 max_events: int, stream: EventHubsStream):
        self.consumer = consumer
        self.targets = targets
        self.after = after
        self.max_events = max_events
        self.max_wait = stream.max_wait_seconds
        self.records: list[EventRecord] = []
        self.reached: set[str] = set()
        self.failed: set[str] = set()
        self.errors: list[tuple[str, Exception]] = []
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.stopped = False

    def run(self) -> list[EventRecord]:
        workers = [
            threading.Thread(target=self._receive, args=(pid,), name=f"eventhubs-read-{pid}",
                             daemon=True)
            for pid in self.targets
        ]
        for worker in workers:
            worker.start()
        self.finished.wait(self.max_wait)
        with self.lock:
            self.stopped = True
        self.consumer.close()
        deadline = time.monotonic() + JOIN_SECONDS
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if self.errors and not self.records:
            pid, error = self.errors[0]
            raise EventHubsError(
                f"receiving from Event Hubs partition {pid} failed: {type(error).__name__}: {error}"
            )
        for pid, error in self.errors:
            log.warning("Event Hubs partition %s: %s: %s", pid, type(error).__name__, error)
        missing = set(self.targets) - self.reached
        if missing and len(self.records) < self.max_events:
            log.info("Event Hubs read stopped after %.1f s before reaching the end of partitions %s",
                     self.max_wait, sorted(missing))
        return sorted(self.records, key=lambda r: (_partition_order(r.partition_id), r.sequence_number))

    def _receive(self, pid: str) -> None:
        start = self.after.get(pid, -1)
        try:
            self.consumer.receive_batch(
                lambda context, batch: self._on_batch(pid, batch),
                partition_id=pid,
                starting_position=start if start >= 0 else "-1",
                starting_position_inclusive=False,
                max_batch_size=min(RECEIVE_BATCH_SIZE, self.max_events),
                max_wait_time=min(1.0, self.max_wait),
                prefetch=min(RECEIVE_BATCH_SIZE, max(self.max_events, 10)),
                on_error=lambda context, error: self._on_error(pid, error),
            )
        except Exception as error:  # surfaced by run()
            self._on_error(pid, error)

    def _on_batch(self, pid: str, batch: list[EventData]) -> None:
        floor = self.after.get(pid, -1)
        with self.lock:
            if self.stopped:
                return
            for event in batch:
                if len(self.records) >= self.max_events:
                    break
                if event.sequence_number is None or event.sequence_number <= floor:
                    continue
                self.records.append(_to_record(pid, event))
                if event.sequence_number >= self.targets[pid]:
                    self.reached.add(pid)
            if len(self.records) >= self.max_events or self.reached >= set(self.targets):
                self.stopped = True
                self.finished.set()

    def _on_error(self, pid: str, error: Exception) -> None:
        with self.lock:
            self.errors.append((pid, error))
            self.failed.add(pid)
            if self.reached | self.failed >= set(self.targets):
                self.finished.set()


def _too_large(body: str, batch) -> EventHubsError:
    return EventHubsError(
        f"an event of {len(body.encode())} bytes does not fit in an Event Hubs batch of at most "
        f"{batch.max_size_in_bytes} bytes"
    )


def _to_record(pid: str, event: EventData) -> EventRecord:
    """An Event Hubs event as a stream record; a body that is not UTF-8 is kept (surrogate-escaped)
    for the parser to dead-letter, never raised on here."""
    key = event.partition_key
    if isinstance(key, bytes):
        key = decode_body(key)
    enqueued = event.enqueued_time or datetime.now(timezone.utc)
    body = event.body
    return EventRecord(
        partition_id=pid,
        sequence_number=int(event.sequence_number),
        body=decode_body(body if isinstance(body, bytes) else b"".join(body)),
        enqueued_time=enqueued.astimezone(timezone.utc),
        partition_key=key,
    )


def _partition_order(pid: str) -> tuple[int, str]:
    return (int(pid), pid) if pid.isdigit() else (1 << 30, pid)
