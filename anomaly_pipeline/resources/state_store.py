"""A tiny durable key-value store in SQLite, for cursors and other small state.

Also home of `connect_sqlite`, the connection settings shared with `LocalEventLog`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field

BUSY_TIMEOUT_MS = 30_000


_MAX_OPEN_PER_THREAD = 16
_open = threading.local()


@contextmanager
def connect_sqlite(path: str, *, synchronous: str = "FULL") -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode (transactions are explicit), WAL journal, busy timeout.

    WAL lets a reader in one process run while a writer in another commits; the busy timeout
    makes writers wait for each other instead of failing. Parent directories are created.
    Connections are kept open per process and thread (closing the last connection of a WAL file
    checkpoints and deletes the WAL, which would cost tens of milliseconds on every call).
    """
    file = str(Path(path).expanduser().resolve())
    cache: OrderedDict = getattr(_open, "connections", None) or OrderedDict()
    _open.connections = cache
    key = (os.getpid(), file, synchronous)
    connection = cache.get(key)
    if connection is None or not Path(file).exists():
        connection = _open_sqlite(file, synchronous)
        cache[key] = connection
        while len(cache) > _MAX_OPEN_PER_THREAD:
            (pid, _, _), oldest = cache.popitem(last=False)
            if pid == os.getpid():
                oldest.close()
    cache.move_to_end(key)
    try:
        yield connection
    finally:
        if connection.in_transaction:  # never leave a lock behind
            connection.execute("ROLLBACK")


def _open_sqlite(file: str, synchronous: str) -> sqlite3.Connection:
    Path(file).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        file, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    return connection


@contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error): one writer at a time, all or nothing."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class StateStore(dg.ConfigurableResource):
    """A small durable key-value store (SQLite, WAL mode), safe to share between processes.

    Holds the tweet cursor and other small pipeline state as text. Usable directly in Python:
    `StateStore(path="state.sqlite").set("tweet_cursor", "123")`.
    """

    path: str = Field(description="The SQLite file holding the state (parent folders are created).")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with connect_sqlite(self.path) as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS state ("
                " key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms INTEGER NOT NULL)"
            )
            yield connection

    def get(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        with self._connect() as connection:
            row = connection.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        """Durably store `value` under `key` (replacing any previous value)."""
        with self._connect() as connection, write_transaction(connection):
            self._put(connection, key, value)

    def delete(self, key: str) -> None:
        """Remove `key` if present."""
        with self._connect() as connection, write_transaction(connection):
            connection.execute("DELETE FROM state WHERE key = ?", (key,))

    def compare_and_set(self, key: str, expected: str | None, new: str) -> bool:
        """Store `new` only if the current value is `expected` (None = key absent); atomic across
        processes. Returns whether the value was stored."""
        with self._connect() as connection, write_transaction(connection):
            row = connection.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            if (row[0] if row else None) != expected:
                return False
            self._put(connection, key, new)
            return True

    def items(self) -> dict[str, str]:
        """Every key and value (for inspection)."""
        with self._connect() as connection:
            return dict(connection.execute("SELECT key, value FROM state ORDER BY key"))

    @staticmethod
    def _put(connection: sqlite3.Connection, key: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"StateStore values are text; got {type(value).__name__} for {key!r}")
        connection.execute(
            "INSERT INTO state (key, value, updated_ms) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET"
            " value = excluded.value, updated_ms = excluded.updated_ms",
            (key, value, int(time.time() * 1000)),
        )
