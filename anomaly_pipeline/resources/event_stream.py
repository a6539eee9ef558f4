"""The event stream between ingestion and aggregation, with Event Hubs semantics.

A stream has partitions; each published event gets a per-partition, increasing sequence number;
consumers keep durable per-partition checkpoints (the last sequence number they fully processed).
Implementations: `LocalEventLog` (SQLite in WAL mode, the embedded default, `local_event_log.py`)
and `EventHubsStream` (azure-eventhub, `event_hubs.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg

DEFAULT_CONSUMER_GROUP = "$Default"


@dataclass(frozen=True)
class EventRecord:
    """One event read from the stream. `body` is the UTF-8 text the producer sent."""

    partition_id: str
    sequence_number: int
    body: str
    enqueued_time: datetime
    partition_key: str | None = None


@dataclass(frozen=True)
class PublishReport:
    """What a publish call wrote: event count and the last sequence number per partition."""

    event_count: int
    last_sequence_numbers: dict[str, int] = field(default_factory=dict)


class EventStream(dg.ConfigurableResource):
    """A partitioned, durable event stream with per-consumer-group checkpoints."""

    def partition_ids(self) -> list[str]:
        raise NotImplementedError

    def publish(self, events: list[tuple[str | None, str]]) -> PublishReport:
        """Publish (partition_key, body) pairs. Events with the same key land in the same partition.

        Either raises or has durably stored every event.
        """
        raise NotImplementedError

    def read(
        self,
        after: dict[str, int],
        max_events: int,
    ) -> list[EventRecord]:
        """Up to `max_events` events with sequence number > `after[partition]` (-1 = from the start),
        in sequence order within each partition."""
        raise NotImplementedError

    def load_checkpoints(self, consumer_group: str = DEFAULT_CONSUMER_GROUP) -> dict[str, int]:
        """Last fully processed sequence number per partition (-1 for a partition never processed)."""
        raise NotImplementedError

    def save_checkpoints(
        self, positions: dict[str, int], consumer_group: str = DEFAULT_CONSUMER_GROUP
    ) -> None:
        """Durably record `positions`; only ever called after the results are committed downstream."""
        raise NotImplementedError

    def lag(self, consumer_group: str = DEFAULT_CONSUMER_GROUP) -> dict[str, int]:
        """Events published past the group's checkpoint, per partition."""
        raise NotImplementedError
