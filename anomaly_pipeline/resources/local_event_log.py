"""`LocalEventLog`: an embedded, durable event stream with Event Hubs semantics, in SQLite.

Tables: `log_meta` (partition count), `log_partitions` (next sequence number per partition),
`log_events` (clustered on (partition_id, sequence_number)) and `log_checkpoints` (per consumer
group and partition). Sequence numbers are assigned under SQLite's write lock, in the same
transaction that stores the events, so a reader never sees a gap or a half-published batch.

Bodies are read as text; one that another producer stored as bytes (a BLOB, or TEXT that is not
UTF-8) is decoded with `decode_body`, so the stream step dead-letters it instead of failing.
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Literal

from pydantic import Field

from anomaly_pipeline.resources.event_stream import (
    DEFAULT_CONSUMER_GROUP,
    EventRecord,
    EventStream,
    PublishReport,
)
from anomaly_pipeline.resources.state_store import connect_sqlite, write_transaction
from anomaly_pipeline.streaming.events import decode_body

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS log_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS log_partitions ("
    " partition_id INTEGER PRIMARY KEY, next_sequence INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS log_events ("
    " partition_id INTEGER NOT NULL, sequence_number INTEGER NOT NULL,"
    " enqueued_ms INTEGER NOT NULL, partition_key TEXT, body TEXT NOT NULL,"
    " PRIMARY KEY (partition_id, sequence_number)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS log_checkpoints ("
    " consumer_group TEXT NOT NULL, partition_id INTEGER NOT NULL,"
    " sequence_number INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY (consumer_group, partition_id))",
)

_READ_SQL = (
    "SELECT sequence_number, enqueued_ms, CAST(partition_key AS {type}), CAST(body AS {type})"
    " FROM log_events WHERE partition_id = ? AND sequence_number > ? ORDER BY sequence_number LIMIT ?"
)
_READ_TEXT_SQL = _READ_SQL.format(type="TEXT")
_READ_BYTES_SQL = _READ_SQL.format(type="BLOB")
_NOT_UTF8 = "Could not decode to UTF-8"  # sqlite3's error for TEXT that is not UTF-8


def _read_rows(connection: sqlite3.Connection, parameters: tuple) -> list[tuple]:
    """Rows of `_READ_SQL`: as text (fast), or, if some value is not UTF-8, as bytes decoded with
    `decode_body` (invalid bytes kept as surrogate escapes for the parser to reject)."""
    try:
        return connection.execute(_READ_TEXT_SQL, parameters).fetchall()
    except sqlite3.OperationalError as problem:
        if not str(problem).startswith(_NOT_UTF8):
            raise
    rows = connection.execute(_READ_BYTES_SQL, parameters).fetchall()
    return [
        (sequence, enqueued_ms, None if key is None else decode_body(key), decode_body(body))
        for sequence, enqueued_ms, key, body in rows
    ]


def stable_partition(partition_key: str, partition_count: int) -> int:
    """The partition of `partition_key`: crc32 of its UTF-8 bytes modulo the partition count
    (stable across processes and Python versions, unlike `hash()`)."""
    return zlib.crc32(partition_key.encode("utf-8")) % partition_count


class LocalEventLog(EventStream):
    """A durable local event stream with Event Hubs semantics, stored in one SQLite file (WAL).

    Events with the same partition key always land in the same partition (crc32 of the key);
    events without a key are spread round robin. Each partition numbers its events 0, 1, 2, ...
    A publish is one transaction (all events stored, or none). Consumers keep per-partition
    checkpoints per consumer group. A producer and consumers may run in different processes.
    Usable directly in Python: `LocalEventLog(path="events.sqlite").publish([("key", "body")])`.
    """

    path: str = Field(description="The SQLite file of the log (parent folders are created).")
    partition_count: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Number of partitions; fixed when the file is created (a mismatch errors).",
    )
    synchronous: Literal["FULL", "NORMAL", "OFF"] = Field(
        default="FULL",
        description="SQLite synchronous mode: FULL survives power loss, NORMAL process crashes.",
    )

    # ---------------------------------------------------------------- connection

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with connect_sqlite(self.path, synchronous=self.synchronous) as connection:
            self._ensure_schema(connection)
            yield connection

    def _ensure_schema(self, connection: sqlite3.Connection) -> None:
        try:
            row = connection.execute(
                "SELECT value FROM log_meta WHERE name = 'partition_count'"
            ).fetchone()
        except sqlite3.OperationalError:
            row = None
        if row is None:
            with write_transaction(connection):
                for statement in _SCHEMA:
                    connection.execute(statement)
                connection.execute(
                    "INSERT OR IGNORE INTO log_meta VALUES ('partition_count', ?)",
                    (str(self.partition_count),),
                )
                row = connection.execute(
                    "SELECT value FROM log_meta WHERE name = 'partition_count'"
                ).fetchone()
                connection.executemany(
                    "INSERT OR IGNORE INTO log_partitions VALUES (?, 0)",
                    [(p,) for p in range(int(row[0]))],
                )
        if int(row[0]) != self.partition_count:
            raise ValueError(
                f"event log {self.path} has {row[0]} partitions, configured partition_count is "
                f"{self.partition_count}; partition keys would move, so this is refused"
            )

    def _next_sequences(self, connection: sqlite3.Connection) -> list[int]:
        rows = connection.execute(
            "SELECT next_sequence FROM log_partitions ORDER BY partition_id"
        ).fetchall()
        return [r[0] for r in rows]

    def _partition(self, partition_id: str) -> int:
        try:
            number = int(partition_id)
        except (TypeError, ValueError):
            number = -1
        if not 0 <= number < self.partition_count or str(number) != str(partition_id):
            raise ValueError(
                f"unknown partition {partition_id!r}; partitions are {self.partition_ids()}"
            )
        return number

    # ---------------------------------------------------------------- EventStream

    def partition_ids(self) -> list[str]:
        """"0" .. str(partition_count - 1)."""
        return [str(p) for p in range(self.partition_count)]

    def partition_for_key(self, partition_key: str) -> str:
        """The partition id that events with `partition_key` land in."""
        return str(stable_partition(partition_key, self.partition_count))

    def publish(self, events: list[tuple[str | None, str]]) -> PublishReport:
        """Publish (partition_key, body) pairs in one transaction: all are stored, or none (the
        error is raised). Returns the count and the last sequence number per partition written."""
        if not events:
            return PublishReport(event_count=0, last_sequence_numbers={})
        count = self.partition_count
        crc32 = zlib.crc32
        try:
            partitions = [-1 if k is None else crc32(k.encode()) % count for k, _ in events]
        except AttributeError:
            bad = next(k for k, _ in events if not isinstance(k, str) and k is not None)
            raise TypeError(f"partition key must be str or None, got {bad!r}") from None
        if not all(type(body) is str for _, body in events):
            bad = next(body for _, body in events if not isinstance(body, str))
            raise TypeError(f"event body must be str, got {type(bad).__name__}")

        enqueued_ms = int(time.time() * 1000)
        with self._connect() as connection, write_transaction(connection):
            first = self._next_sequences(connection)
            # Events without a key go round robin, continuing from the total published so far.
            round_robin = sum(first)
            grouped: list[list[tuple[str | None, str]]] = [[] for _ in range(count)]
            for event, partition in zip(events, partitions):
                if partition < 0:
                    partition = round_robin % count
                    round_robin += 1
                grouped[partition].append(event)
            # Partition by partition, so each insert appends to the end of the table's B-tree.
            connection.executemany(
                "INSERT INTO log_events VALUES (?, ?, ?, ?, ?)",
                (
                    (partition, sequence, enqueued_ms, key, body)
                    for partition, batch in enumerate(grouped)
                    for sequence, (key, body) in enumerate(batch, start=first[partition])
                ),
            )
            changed = [(first[p] + len(b), p) for p, b in enumerate(grouped) if b]
            connection.executemany(
                "UPDATE log_partitions SET next_sequence = ? WHERE partition_id = ?", changed
            )
        return PublishReport(
            event_count=len(events),
            last_sequence_numbers={str(p): n - 1 for n, p in changed},
        )

    def read(self, after: dict[str, int], max_events: int) -> list[EventRecord]:
        """Up to `max_events` events with sequence number > `after[partition]` (-1 or absent =
        from the start), in sequence order within each partition (grouped by partition). The
        budget is shared fairly: each partition with events gets an equal share, and what one
        partition does not use goes to the others."""
        return self._records(self._fetch(after, max_events))

    def read_bodies(
        self, after: dict[str, int], max_events: int
    ) -> tuple[list[str], dict[str, int]]:
        """Fast path of `read` for bulk consumers: the bodies of the same events, and the new
        position (last sequence number read) of every partition, unread ones keeping `after`'s."""
        fetched = self._fetch(after, max_events)
        positions = {p: -1 for p in self.partition_ids()}
        positions.update({p: int(s) for p, s in after.items()})
        bodies: list[str] = []
        for partition, rows in fetched.items():
            if rows:
                bodies.extend([row[3] for row in rows])
                positions[str(partition)] = rows[-1][0]
        return bodies, positions

    def read_columns(self, after: dict[str, int], max_events: int) -> dict[str, list]:
        """Fast path of `read` for columnar consumers (e.g. a polars DataFrame): the same events
        as lists keyed partition_id, sequence_number, body, enqueued_ms (Unix ms), partition_key,
        without building an `EventRecord` per event."""
        columns: dict[str, list] = {
            "partition_id": [], "sequence_number": [], "body": [], "enqueued_ms": [],
            "partition_key": [],
        }
        for partition, rows in self._fetch(after, max_events).items():
            if rows:
                sequences, enqueued, keys, bodies = zip(*rows)
                columns["partition_id"].extend([str(partition)] * len(rows))
                columns["sequence_number"].extend(sequences)
                columns["body"].extend(bodies)
                columns["enqueued_ms"].extend(enqueued)
                columns["partition_key"].extend(keys)
        return columns

    def _fetch(self, after: dict[str, int], max_events: int) -> dict[int, list[tuple]]:
        positions = {p: -1 for p in range(self.partition_count)}
        for partition_id, sequence in after.items():
            positions[self._partition(partition_id)] = int(sequence)
        fetched: dict[int, list[tuple]] = {p: [] for p in positions}
        active = list(positions)
        remaining = max(0, max_events)
        with self._connect() as connection:
            while remaining > 0 and active:
                share = max(1, remaining // len(active))
                still_active = []
                for partition in active:
                    if remaining <= 0:
                        break
                    limit = min(share, remaining)
                    rows = _read_rows(connection, (partition, positions[partition], limit))
                    if rows:
                        fetched[partition].extend(rows)
                        positions[partition] = rows[-1][0]
                        remaining -= len(rows)
                    if len(rows) == limit:
                        still_active.append(partition)
                active = still_active
        return fetched

    @staticmethod
    def _records(fetched: dict[int, list[tuple]]) -> list[EventRecord]:
        times: dict[int, datetime] = {}
        utc = timezone.utc
        records: list[EventRecord] = []
        add = records.append
        for partition, rows in fetched.items():
            partition_id = str(partition)
            for sequence, enqueued_ms, key, body in rows:
                moment = times.get(enqueued_ms)
                if moment is None:
                    moment = times[enqueued_ms] = datetime.fromtimestamp(enqueued_ms / 1000, utc)
                add(EventRecord(partition_id, sequence, body, moment, key))
        return records

    def delete_consumed(self, older_than: datetime) -> int:
        """Retention: delete events enqueued before `older_than` that every consumer group has
        already checkpointed past. Unconsumed events are never deleted. Returns the count."""
        cutoff_ms = int(older_than.timestamp() * 1000)
        with self._connect() as connection, write_transaction(connection):
            groups = connection.execute(
                "SELECT COUNT(DISTINCT consumer_group) FROM log_checkpoints"
            ).fetchone()[0]
            if groups == 0:
                return 0
            deleted = connection.execute(
                "DELETE FROM log_events WHERE enqueued_ms < ? AND sequence_number <= ("
                " SELECT CASE WHEN COUNT(*) < ? THEN -1 ELSE MIN(sequence_number) END"
                " FROM log_checkpoints c WHERE c.partition_id = log_events.partition_id)",
                (cutoff_ms, groups),
            ).rowcount
        return deleted

    def last_sequence_numbers(self) -> dict[str, int]:
        """The last published sequence number per partition (-1 for an empty partition)."""
        with self._connect() as connection:
            return {str(p): n - 1 for p, n in enumerate(self._next_sequences(connection))}

    def load_checkpoints(self, consumer_group: str = DEFAULT_CONSUMER_GROUP) -> dict[str, int]:
        """Last fully processed sequence number per partition (-1 for one never processed)."""
        with self._connect() as connection:
            return self._checkpoints(connection, consumer_group)

    def _checkpoints(self, connection: sqlite3.Connection, consumer_group: str) -> dict[str, int]:
        positions = {p: -1 for p in self.partition_ids()}
        rows = connection.execute(
            "SELECT partition_id, sequence_number FROM log_checkpoints WHERE consumer_group = ?",
            (consumer_group,),
        )
        positions.update({str(p): s for p, s in rows})
        return positions

    def save_checkpoints(
        self, positions: dict[str, int], consumer_group: str = DEFAULT_CONSUMER_GROUP
    ) -> None:
        """Durably record `positions` (partition id -> last processed sequence number) for the
        group, in one transaction. Partitions not named keep their checkpoint. A position past
        the last published event is refused (ValueError)."""
        updates = [(self._partition(p), int(s)) for p, s in positions.items()]
        now_ms = int(time.time() * 1000)
        with self._connect() as connection, write_transaction(connection):
            last = [n - 1 for n in self._next_sequences(connection)]
            for partition, sequence in updates:
                if not -1 <= sequence <= last[partition]:
                    raise ValueError(
                        f"checkpoint {sequence} for partition {partition} is outside -1.."
                        f"{last[partition]} (the last published sequence number)"
                    )
            connection.executemany(
                "INSERT INTO log_checkpoints VALUES (?, ?, ?, ?)"
                " ON CONFLICT(consumer_group, partition_id) DO UPDATE SET"
                " sequence_number = excluded.sequence_number, updated_ms = excluded.updated_ms",
                [(consumer_group, p, s, now_ms) for p, s in updates],
            )

    def lag(self, consumer_group: str = DEFAULT_CONSUMER_GROUP) -> dict[str, int]:
        """Events published past the group's checkpoint, per partition."""
        with self._connect() as connection:
            last = self._next_sequences(connection)
            checkpoints = self._checkpoints(connection, consumer_group)
        return {str(p): n - 1 - checkpoints[str(p)] for p, n in enumerate(last)}
