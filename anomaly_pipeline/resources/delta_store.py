"""The pipeline's Delta tables: where they live and the only code that writes them.

Writes are MERGEs on each table's key (declared in `anomaly_pipeline.tables`), so reprocessing the
same input never duplicates or loses rows. Reads go through polars' lazy Delta scan.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from anomaly_pipeline.resources.delta_location import DeltaLocation
from anomaly_pipeline.tables import TableSpec

_COMMIT_ATTEMPTS = 5


class MissingTableError(RuntimeError):
    """A Delta table that must exist (it already held data) is missing; the message names it."""


class DeltaStore(DeltaLocation):
    """The pipeline's Delta tables under one root: a local directory (the default) or an
    `abfss://` ADLS Gen2 URI, with MERGE-only writes keyed as `anomaly_pipeline.tables` declares."""

    def table_uri(self, spec: TableSpec | str) -> str:
        return super().table_uri(spec.name if isinstance(spec, TableSpec) else spec)

    def exists(self, spec: TableSpec) -> bool:
        return DeltaTable.is_deltatable(
            self.table_uri(spec), storage_options=self.storage_options_dict()
        )

    def open_table(self, spec: TableSpec) -> DeltaTable:
        """Open the existing table (deltalake raises if it does not exist)."""
        return DeltaTable(self.table_uri(spec), storage_options=self.storage_options_dict())

    def require_table(self, spec: TableSpec, why: str) -> None:
        """Raise `MissingTableError` naming the table (and `why` it must exist) if it is missing."""
        if not self.exists(spec):
            raise MissingTableError(
                f"Delta table '{spec.name}' is missing at {self.table_uri(spec)}, but {why}: it was "
                f"deleted or DELTA_ROOT moved. Nothing was written; restore the table (or rebuild "
                f"it from the event log by resetting the consumer checkpoints, if the log still "
                f"holds every event)."
            )

    def ensure_table(self, spec: TableSpec) -> DeltaTable:
        """Open the table, creating it empty with its declared schema on first use."""
        if not self.exists(spec):
            DeltaTable.create(
                self.table_uri(spec),
                schema=spec.schema,
                mode="ignore",
                partition_by=list(spec.partition_by) or None,
                storage_options=self.storage_options_dict(),
            )
        return self.open_table(spec)

    def merge(
        self,
        spec: TableSpec,
        rows: pl.DataFrame,
        target_partitions: Mapping[str, Iterable] | None = None,
    ) -> dict[str, int]:
        """Upsert `rows` on the table's merge key (unique across the whole table).

        `target_partitions` ({partition column: values}) limits the target to those partitions
        for file pruning; a row stored in any other partition is never matched, so it must name
        every partition that may hold a key of `rows`. Rows must hold every column of the table; a
        stored table that lacks a declared column gains it.
        Concurrent writers are retried on commit conflicts; the MERGE is idempotent, so a retry
        can never double-count.
        """
        if rows.is_empty():
            return {"num_target_rows_inserted": 0, "num_target_rows_updated": 0}
        source = to_arrow(rows, spec.schema)
        predicate = merge_predicate(spec.merge_key, target_partitions)
        for attempt in range(_COMMIT_ATTEMPTS):
            table = self.ensure_table(spec)
            try:
                # merge_schema: a table written before a column was declared gains it (its old rows
                # hold null there); without it, delta-rs would silently drop the new column's values
                metrics = (
                    table.merge(source, predicate=predicate, source_alias="s", target_alias="t", merge_schema=True)
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute()
                )
                return {k: v for k, v in metrics.items() if k.startswith("num_")}
            except CommitFailedError:
                if attempt == _COMMIT_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def scan(self, spec: TableSpec) -> pl.LazyFrame:
        """A lazy polars scan of the table (an empty frame of the right schema if it does not exist)."""
        if not self.exists(spec):
            return pl.from_arrow(spec.schema.empty_table()).lazy()
        return pl.scan_delta(self.table_uri(spec), storage_options=self.storage_options_dict())

    def read_hours(self, spec: TableSpec, start: datetime, end: datetime) -> pl.DataFrame:
        """Rows whose `hour` lies in [start, end), sorted by hour."""
        return (
            self.scan(spec)
            .filter((pl.col("hour") >= start) & (pl.col("hour") < end))
            .sort("hour")
            .collect()
        )

    def version(self, spec: TableSpec) -> int | None:
        return self.open_table(spec).version() if self.exists(spec) else None


def merge_predicate(keys: Iterable[str], target_partitions: Mapping[str, Iterable] | None) -> str:
    """`t.k = s.k AND ...` over `keys`, plus `t.column IN ('value', ...)` per target partition."""
    terms = [f"t.{key} = s.{key}" for key in keys]
    for column, values in (target_partitions or {}).items():
        literals = sorted({_sql_string(value) for value in values})
        terms.append(f"t.{column} IN ({', '.join(literals)})")
    return " AND ".join(terms)


def _sql_string(value: object) -> str:
    text = str(value).replace("'", "''")
    return f"'{text}'"


def to_arrow(rows: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """Rows as an Arrow table with exactly the declared schema (column order and types)."""
    missing = [name for name in schema.names if name not in rows.columns]
    if missing:
        raise ValueError(f"rows lack the table columns {missing}")
    return rows.select(schema.names).to_arrow().cast(schema)
