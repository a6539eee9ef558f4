"""Another producer of the local event log: writes its SQLite file directly, bodies as raw bytes.

`LocalEventLog.publish` only takes `str` bodies, so it cannot store bytes that are not UTF-8; a
producer in another language (or a bug) can. These helpers store such events the way it would.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

from anomaly_pipeline.resources.local_event_log import LocalEventLog


def publish_raw(log: LocalEventLog, partition: int, bodies: list[bytes], as_blob: bool) -> None:
    """Append `bodies` to `partition`, each stored as a BLOB or as TEXT holding those exact bytes."""
    log.partition_ids()  # the schema exists
    value = "?" if as_blob else "CAST(? AS TEXT)"
    with closing(sqlite3.connect(log.path)) as connection, connection:
        (first,) = connection.execute(
            "SELECT next_sequence FROM log_partitions WHERE partition_id = ?", (partition,)
        ).fetchone()
        now_ms = int(time.time() * 1000)
        connection.executemany(
            f"INSERT INTO log_events VALUES (?, ?, ?, NULL, {value})",
            [(partition, first + offset, now_ms, body) for offset, body in enumerate(bodies)],
        )
        connection.execute(
            "UPDATE log_partitions SET next_sequence = ? WHERE partition_id = ?",
            (first + len(bodies), partition),
        )
