"""A tiny durable key-value store in SQLite, for cursors and other small state.

Also home of `connect_sqlite`, the connection settings shared with `LocalEventLog`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field

BUSY_TIMEOUT_MS = 30_000


@contextmanager
def connect_sqlite(path: str, *, synchronous: str = "FULL") -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode (transactions are explicit), WAL journal, busy timeout.

    WAL lets a reader in one process run while a writer in another commits; the busy timeout
    makes writers wait for each other instead of failing. Parent directories are created.
    """
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        str(Path(path).expanduser()), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        yield connection
    finally:
        connection.close()


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
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
            (key, value, int(time.time() * 1000)),
        )
