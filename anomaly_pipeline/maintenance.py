"""Daily upkeep for a pipeline that runs every day: compact and vacuum the Delta tables (the
minute-by-minute MERGEs leave many small files) and apply the local event log's retention."""

from datetime import datetime, timedelta, timezone

import dagster as dg

from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.event_stream import EventStream
from anomaly_pipeline.resources.local_event_log import LocalEventLog
from anomaly_pipeline.tables import ALL_TABLES


class MaintenanceConfig(dg.Config):
    vacuum_retention_hours: int = 168
    event_retention_hours: int = 168


@dg.op
def compact_and_vacuum_tables(
    context: dg.OpExecutionContext, config: MaintenanceConfig, delta_store: DeltaStore
) -> None:
    """Bin-pack each Delta table's small files, then remove files unreferenced for a week."""
    for spec in ALL_TABLES:
        if not delta_store.exists(spec):
            continue
        table = delta_store.ensure_table(spec)
        compacted = table.optimize.compact()
        removed = table.vacuum(
            retention_hours=config.vacuum_retention_hours, dry_run=False, enforce_retention_duration=False
        )
        table.cleanup_metadata()
        context.log.info(
            f"{spec.name}: {compacted.get('numFilesRemoved', 0)} files compacted into "
            f"{compacted.get('numFilesAdded', 0)}, {len(removed)} old files vacuumed"
        )


@dg.op
def apply_event_retention(
    context: dg.OpExecutionContext, config: MaintenanceConfig, event_stream: EventStream
) -> None:
    """Delete local-log events older than the retention that every consumer has processed
    (Event Hubs applies its own retention)."""
    if not isinstance(event_stream, LocalEventLog):
        context.log.info("The event stream manages its own retention.")
        return
    cutoff = datetime.now(timezone.utc) - timedelta(hours=config.event_retention_hours)
    context.log.info(f"Deleted {event_stream.delete_consumed(cutoff)} consumed events")


@dg.job(description="Daily storage upkeep: Delta compaction and vacuum, event log retention.")
def storage_maintenance_job():
    compact_and_vacuum_tables()
    apply_event_retention()


storage_maintenance_schedule = dg.ScheduleDefinition(
    name="storage_maintenance_schedule",
    job=storage_maintenance_job,
    cron_schedule="17 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
