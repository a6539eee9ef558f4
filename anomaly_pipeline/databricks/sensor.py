"""`databricks_stream_sensor`: keeps the Databricks streaming job caught up and reports what it wrote.

Each tick:
1. If the run the sensor last started has ended: on success, advance the `databricks` consumer
   group's checkpoints to the stream positions recorded when it was started (an `availableNow`
   run processes at least everything published before it started, so the stream's `lag()` for that
   group measures what the job has not processed yet); on failure (FAILED, TIMEDOUT, CANCELED,
   INTERNAL_ERROR...) report it: an `AssetObservation` on `hourly_tweet_metrics` with the state,
   message and run page URL, an error in the tick log, and the skip reason. No new run is started
   on that tick, so a failing job is retried at most once per tick interval.
2. If a run is active (started by the sensor or by hand, e.g. a `continuous` run), skip.
   Otherwise, if the stream has lag, start an `availableNow` run (`jobs.run_now`, not waited on)
   and record its run id in the cursor.
3. Report each hour the job updated as an `AssetMaterialization` of that `hourly_tweet_metrics`
   partition, so downstream automation (detection) reacts as it does to the embedded engine.

The decisions are the pure function `decide`; the sensor only gathers its inputs and acts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

import dagster as dg

from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline.resources.databricks_stream import DatabricksStreamingJob, RunInfo
from anomaly_pipeline.resources.event_stream import EventStream

HOURLY_ASSET = dg.AssetKey("hourly_tweet_metrics")
RUN_PARAMETERS = {"mode": "available-now"}


@dataclass(frozen=True)
class StreamCursor:
    """The sensor cursor (JSON): the run it started and is watching, the stream positions that run
    will at least reach, and the hourly table version already reported."""

    run_id: int | None = None
    target_positions: dict[str, int] = field(default_factory=dict)
    metrics_version: int | None = None

    @classmethod
    def from_json(cls, text: str | None) -> "StreamCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            run_id=data.get("run_id"),
            target_positions={k: int(v) for k, v in (data.get("target_positions") or {}).items()},
            metrics_version=data.get("metrics_version"),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class Decision:
    start_run: bool
    reason: str
    cursor: StreamCursor
    failed_run: RunInfo | None = None
    checkpoints_to_save: dict[str, int] | None = None


def decide(
    cursor: StreamCursor,
    tracked_run: RunInfo | None,
    active_run: RunInfo | None,
    lag: dict[str, int],
    checkpoints: dict[str, int],
) -> Decision:
    """What to do this tick. `tracked_run` is the state of `cursor.run_id` (None without one)."""
    notes: list[str] = []
    failed = None
    to_save = None
    if tracked_run is not None and tracked_run.ended:
        if tracked_run.succeeded:
            to_save = dict(cursor.target_positions)
            notes.append(f"Databricks run {tracked_run.run_id} succeeded.")
        else:
            failed = tracked_run
            notes.append(describe_failure(tracked_run))
        cursor = replace(cursor, run_id=None, target_positions={})

    # stream positions published so far, and those the job has processed (incl. a run that just succeeded)
    published = {p: checkpoints.get(p, -1) + n for p, n in lag.items()}
    done = {p: max(checkpoints.get(p, -1), (to_save or {}).get(p, -1)) for p in published}
    pending = {p: published[p] - done[p] for p in published if published[p] > done[p]}
    if active_run is not None:
        notes.append(f"Databricks run {active_run.run_id} is {active_run.state}: not starting another. {active_run.run_page_url}".strip())
        return Decision(False, " ".join(notes), cursor, failed, to_save)
    if failed is not None:
        notes.append("Not starting a new run on the tick that reports a failure.")
        return Decision(False, " ".join(notes), cursor, failed, to_save)
    if not pending:
        notes.append("No events waiting in the stream.")
        return Decision(False, " ".join(notes), cursor, failed, to_save)
    target = published
    notes.append(f"{sum(pending.values())} events waiting: starting an availableNow run.")
    return Decision(True, " ".join(notes), replace(cursor, target_positions=target), failed, to_save)


def describe_failure(run: RunInfo) -> str:
    message = f": {run.state_message}" if run.state_message else ""
    return f"Databricks run {run.run_id} ended {run.state}{message} ({run.run_page_url or 'no run page'})."


def hour_materializations(hours: list[datetime], version: int | None) -> list[dg.AssetMaterialization]:
    return [
        dg.AssetMaterialization(
            asset_key=HOURLY_ASSET,
            partition=partition_key(hour),
            description="Recomputed by the Databricks streaming job",
            metadata={"engine": "databricks", "delta_version": version if version is not None else -1},
        )
        for hour in hours
    ]


def failure_observation(run: RunInfo) -> dg.AssetObservation:
    return dg.AssetObservation(
        asset_key=HOURLY_ASSET,
        description=describe_failure(run),
        metadata={
            "databricks_run_id": run.run_id,
            "databricks_state": run.state,
            "state_message": run.state_message,
            "run_page_url": dg.MetadataValue.url(run.run_page_url) if run.run_page_url else "",
        },
    )


def build_databricks_stream_sensor(
    name: str = "databricks_stream_sensor",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The sensor; resources `databricks_stream` (DatabricksStreamingJob) and `event_stream`.
    Definitions registers it only when `STREAM_ENGINE=databricks`."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Starts the Databricks streaming job when events wait; reports the hours it updated.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        databricks_stream: DatabricksStreamingJob,
        event_stream: EventStream,
    ) -> dg.SensorResult:
        cursor = StreamCursor.from_json(context.cursor)
        group = databricks_stream.consumer_group
        tracked = databricks_stream.run_state(cursor.run_id) if cursor.run_id is not None else None
        decision = decide(
            cursor,
            tracked,
            databricks_stream.active_run(),
            event_stream.lag(group),
            event_stream.load_checkpoints(group),
        )
        cursor = decision.cursor
        if decision.checkpoints_to_save:
            event_stream.save_checkpoints(decision.checkpoints_to_save, group)
        events: list[dg.AssetMaterialization | dg.AssetObservation] = []
        if decision.failed_run is not None:
            context.log.error(describe_failure(decision.failed_run))
            events.append(failure_observation(decision.failed_run))
        reason = decision.reason
        if decision.start_run:
            run_id = databricks_stream.start_run(dict(RUN_PARAMETERS))
            cursor = replace(cursor, run_id=run_id)
            reason = f"{reason} Started Databricks run {run_id}."
            context.log.info(reason)
        hours, version = databricks_stream.updated_hours_since(cursor.metrics_version)
        cursor = replace(cursor, metrics_version=version)
        events.extend(hour_materializations(hours, version))
        if hours:
            reason = f"{reason} Reported {len(hours)} updated hour(s)."
        return dg.SensorResult(asset_events=events, cursor=cursor.to_json(), skip_reason=reason)

    return _sensor


databricks_stream_sensor = build_databricks_stream_sensor()
