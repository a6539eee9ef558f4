"""The stream's small state in Delta tables next to the data, so it survives the host.

With `EVENT_STREAM=eventhubs` the Event Hubs consumer checkpoints (`DeltaCheckpointStore`) and the
tweet cursor (`DeltaStateStore`, the `pipeline_state` resource) live under `DELTA_ROOT`, in the
same storage and with the same credentials as the tables they describe: a second machine, or a
container restarted on a fresh disk, finds them there. A checkpoint kept next to its data is also
lost only with it: if a local `DELTA_ROOT` goes, the stream replays the hub's retained events
into fresh tables instead of skipping them.

Tables: `eventhub_checkpoints` (one row per event hub, consumer group and partition: the last
sequence number whose events are committed downstream) and `pipeline_state` (key, value). Both
are written by MERGE, retried on a concurrent commit. A checkpoint never moves backwards: the
MERGE updates a row only to a higher sequence number, so a late, stale writer loses. Every
`VACUUM_EVERY` commits a table drops the files its MERGEs replaced; the Delta log keeps one day.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import dagster as dg
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError
from pydantic import Field

from anomaly_pipeline.resources.delta_location import DeltaLocation
from anomaly_pipeline.resources.delta_store import to_arrow
from anomaly_pipeline.tables import UTC_TIMESTAMP, TableSpec

EVENTHUB_CHECKPOINTS = TableSpec(
    name="eventhub_checkpoints",
    schema=pa.schema([
        ("eventhub", pa.string()), ("consumer_group", pa.string()), ("partition_id", pa.string()),
        ("sequence_number", pa.int64()), ("updated_at", UTC_TIMESTAMP),
    ]),
    merge_key=("eventhub", "consumer_group", "partition_id"),
)  # fmt: skip
PIPELINE_STATE = TableSpec(
    name="pipeline_state",
    schema=pa.schema([("key", pa.string()), ("value", pa.string()), ("updated_at", UTC_TIMESTAMP)]),
    merge_key=("key",),
)
TABLE_CONFIGURATION = {
    "delta.logRetentionDuration": "interval 1 day",
    "delta.deletedFileRetentionDuration": "interval 1 hour",
}
VACUUM_EVERY = 100
_COMMIT_ATTEMPTS = 5


class _SmallDeltaTable(dg.ConfigurableResource):
    """One small table under the Delta root, read whole and written by MERGE."""

    location: DeltaLocation = Field(description="The Delta root (DELTA_ROOT) and its credentials.")

    def _read(self, spec: TableSpec) -> pl.DataFrame:
        uri, options = self.location.table_uri(spec.name), self.location.storage_options_dict()
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            return pl.from_arrow(spec.schema.empty_table())
        return pl.read_delta(uri, storage_options=options)

    def _merge(self, spec: TableSpec, rows: pl.DataFrame, update_if: str | None = None) -> None:
        """Upsert `rows` on the table's key; a matched row is updated only where `update_if`
        (a predicate on `s`ource and `t`arget) holds."""
        uri, options = self.location.table_uri(spec.name), self.location.storage_options_dict()
        source = to_arrow(rows, spec.schema)
        on = " AND ".join(f"t.{key} = s.{key}" for key in spec.merge_key)
        for attempt in range(_COMMIT_ATTEMPTS):
            table = DeltaTable.create(
                uri, schema=spec.schema, mode="ignore", configuration=TABLE_CONFIGURATION,
                storage_options=options,
            )  # fmt: skip
            try:
                (
                    table.merge(source, predicate=on, source_alias="s", target_alias="t")
                    .when_matched_update_all(predicate=update_if)
                    .when_not_matched_insert_all()
                    .execute()
                )
                break
            except CommitFailedError:
                if attempt == _COMMIT_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        if table.version() % VACUUM_EVERY == 0:
            table.vacuum(dry_run=False)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class DeltaCheckpointStore(_SmallDeltaTable):
    """Event Hubs consumer checkpoints in the `eventhub_checkpoints` Delta table."""

    def load(self, eventhub: str, consumer_group: str) -> dict[str, int]:
        """The stored checkpoint per partition id (partitions never checkpointed are absent)."""
        rows = self._read(EVENTHUB_CHECKPOINTS).filter(
            (pl.col("eventhub") == eventhub) & (pl.col("consumer_group") == consumer_group)
        )
        return dict(zip(rows["partition_id"].to_list(), rows["sequence_number"].to_list()))

    def save(self, eventhub: str, consumer_group: str, positions: dict[str, int]) -> None:
        """Record `positions`; a stored checkpoint only ever moves forwards."""
        if not positions:
            return
        rows = pl.DataFrame({
            "eventhub": eventhub, "consumer_group": consumer_group,
            "partition_id": [str(pid) for pid in positions],
            "sequence_number": [int(seq) for seq in positions.values()], "updated_at": _now(),
        })  # fmt: skip
        self._merge(EVENTHUB_CHECKPOINTS, rows, update_if="s.sequence_number > t.sequence_number")


class DeltaStateStore(_SmallDeltaTable):
    """Small durable text state (the tweet cursor) in the `pipeline_state` Delta table: the
    `get` / `set` / `items` of the SQLite `StateStore`, for state that must survive the host."""

    def get(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        return self.items().get(key)

    def set(self, key: str, value: str) -> None:
        """Durably store `value` under `key` (replacing any previous value)."""
        if not isinstance(value, str):
            raise TypeError(f"state values are text; got {type(value).__name__} for {key!r}")
        self._merge(PIPELINE_STATE, pl.DataFrame({"key": [key], "value": [value], "updated_at": _now()}))

    def items(self) -> dict[str, str]:
        """Every key and value (for inspection)."""
        rows = self._read(PIPELINE_STATE)
        return dict(zip(rows["key"].to_list(), rows["value"].to_list()))
