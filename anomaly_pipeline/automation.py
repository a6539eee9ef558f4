"""Jobs, sensors and the schedule that keep the pipeline running on its own.

- `raw_tweets_poll_sensor` polls the tweet source every N seconds (the tutorial polls every 10 s).
- `stream_sensor` starts a streaming run whenever the event stream has events past the checkpoint.
- `hourly_detection_schedule` judges each hour once it has closed.
- `history_sensor` seeds recent history on first start and fills hours missed during downtime.

Each sensor starts a run only when the previous run of its job has ended. A run that died
unnoticed (its worker killed) is marked failed first (`anomaly_pipeline.dead_runs`), so it never
blocks a sensor: the stream resumes on the next tick. Stream and ingest runs are short, so they
also carry a `dagster/max_runtime` that Dagster's run monitoring enforces on a hung run.

One hour is judged by one run: the newest closed hour belongs to the schedule until
`SCHEDULE_OWNS_NEWEST_HOUR_FOR` past the hour, and the history sensor never takes an hour that a
detection run has queued or in flight.
"""


from datetime import datetime, timedelta, timezone
from typing import Callable, Collection

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    MAX_RUNTIME_SECONDS_TAG,
    PARTITION_NAME_TAG,
)

from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.dead_runs import fail_if_dead
from anomaly_pipeline.partitions import FIRST_HOUR, HOURLY_PARTITIONS, hour_start, hours_between, partition_key
from anomaly_pipeline.resources.event_stream import EventStream

SHORT_RUN_MAX_SECONDS = 1800
"""Run monitoring ends a poll or stream run still going after this (they take seconds; a year of
events streams in about 10 s): such a run is hung. Its next run resumes from the checkpoint."""
SHORT_RUN_SILENCE_LIMIT_SECONDS = 600
"""A poll or stream run that wrote no event for this long is dead, when its worker's process
cannot be checked (see `anomaly_pipeline.dead_runs`)."""

ingest_job = dg.define_asset_job(
    "ingest_tweets_job", selection=[raw_tweets], partitions_def=HOURLY_PARTITIONS,
    description="Poll the tweet source and publish new tweets to the event stream.",
    tags={MAX_RUNTIME_SECONDS_TAG: str(SHORT_RUN_MAX_SECONDS)},
)  # fmt: skip
stream_job = dg.define_asset_job(
    "stream_tweets_job", selection=[hourly_tweet_metrics], partitions_def=HOURLY_PARTITIONS,
    description="Move events past the checkpoint into the hourly Delta table.",
    tags={MAX_RUNTIME_SECONDS_TAG: str(SHORT_RUN_MAX_SECONDS)},
)  # fmt: skip
detect_job = dg.define_asset_job(
    "detect_anomalies_job", selection=[hourly_tweet_metrics, tweet_anomalies],
    partitions_def=HOURLY_PARTITIONS,
    description="Finish an hour's metrics and judge it.",
)  # fmt: skip
history_job = dg.define_asset_job(
    "pipeline_history_job", selection=[raw_tweets, hourly_tweet_metrics, tweet_anomalies],
    partitions_def=HOURLY_PARTITIONS,
    description="The whole pipeline over a range of hours, in one run (backfills, first start).",
)  # fmt: skip

POLL_SENSOR, STREAM_SENSOR, HISTORY_SENSOR = "raw_tweets_poll_sensor", "stream_sensor", "history_sensor"

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _has_active_run(
    context: dg.SensorEvaluationContext,
    job_name: str,
    sensor_name: str,
    silence_limit_seconds: float | None = None,
) -> bool:
    """Whether a run of the job is still active, after marking failed those that died unnoticed
    (`silence_limit_seconds`: see `anomaly_pipeline.dead_runs`; None for runs that may be quiet
    for long, like backfills)."""
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES))
    active = False
    for run in runs:
        reason = fail_if_dead(context.instance, run, silence_limit_seconds, sensor_name)
        if reason:
            context.log.warning(f"Run {run.run_id} of {job_name} died unnoticed ({reason}): marked it failed.")
        else:
            active = True
    return active


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _current_hour_key() -> str:
    return partition_key(datetime.now(timezone.utc))


def build_poll_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=POLL_SENSOR,
        job=ingest_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def raw_tweets_poll_sensor(context: dg.SensorEvaluationContext):
        """Polls the tweet source for new tweets (materializes the current hour of raw_tweets)."""
        if _has_active_run(context, ingest_job.name, POLL_SENSOR, SHORT_RUN_SILENCE_LIMIT_SECONDS):
            return dg.SkipReason("The previous poll is still running.")
        return dg.RunRequest(partition_key=_current_hour_key())

    return raw_tweets_poll_sensor


def build_stream_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=STREAM_SENSOR,
        job=stream_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def stream_sensor(context: dg.SensorEvaluationContext, event_stream: EventStream):
        """Starts a streaming run when the event stream has events past the consumer checkpoint."""
        pending = sum(event_stream.lag().values())
        if pending == 0:
            return dg.SkipReason("No events past the checkpoint.")
        if _has_active_run(context, stream_job.name, STREAM_SENSOR, SHORT_RUN_SILENCE_LIMIT_SECONDS):
            return dg.SkipReason(f"{pending} events waiting; a streaming run is already active.")
        return dg.RunRequest(partition_key=_current_hour_key(), tags={"pending_events": str(pending)})

    return stream_sensor


@dg.schedule(
    job=detect_job,
    cron_schedule="3 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def hourly_detection_schedule(context: dg.ScheduleEvaluationContext):
    """At minute 3 of every hour, finishes the metrics of the hour that just closed and judges it."""
    closed_hour = hour_start(context.scheduled_execution_time) - timedelta(hours=1)
    return dg.RunRequest(partition_key=partition_key(closed_hour))


def history_run_request(start: datetime, end: datetime, reason: str) -> dg.RunRequest:
    """One run of the whole pipeline over the hours [start, end) (a single-run backfill)."""
    return dg.RunRequest(
        job_name=history_job.name,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: partition_key(start),
            ASSET_PARTITION_RANGE_END_TAG: partition_key(end - timedelta(hours=1)),
            "reason": reason,
        },
    )


# The schedule judges the hour that just closed at minute 3; until this long past the hour the
# history sensor leaves that hour to it (after that, an hour still unjudged was missed).
SCHEDULE_OWNS_NEWEST_HOUR_FOR = timedelta(minutes=20)


def hours_to_fill(
    now: datetime, history_hours: int, first_hour: datetime, taken: Collection[str]
) -> list[datetime]:
    """The oldest run of consecutive closed hours of the last `history_hours` that no run has
    judged or is judging (`taken` partition keys), leaving the newest closed hour to the schedule
    while it still owns it."""
    end = hour_start(now)
    if now - end < SCHEDULE_OWNS_NEWEST_HOUR_FOR:
        end -= timedelta(hours=1)
    start = max(hour_start(now) - timedelta(hours=history_hours), first_hour)  # no hour before the partitions
    gap: list[datetime] = []
    for hour in hours_between(start, end):
        if partition_key(hour) not in taken:
            gap.append(hour)
        elif gap:
            break  # the next gap waits for the next tick, so the run covers no taken hour
    return gap


def _detections_in_flight(context: dg.SensorEvaluationContext) -> set[str]:
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=detect_job.name, statuses=ACTIVE_STATUSES))
    return {run.tags[PARTITION_NAME_TAG] for run in runs if PARTITION_NAME_TAG in run.tags}


def build_history_sensor(
    history_hours: int, first_hour: datetime = FIRST_HOUR, clock: Callable[[], datetime] = _utc_now
) -> dg.SensorDefinition:
    @dg.sensor(
        name=HISTORY_SENSOR,
        jobs=[history_job],
        minimum_interval_seconds=120,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def history_sensor(context: dg.SensorEvaluationContext):
        """Keeps every closed hour of the last N judged: on first start it seeds them, so the UI
        has verdicts at once; after downtime it fills the hours the schedule missed. Each gap is
        one single-run backfill of the whole pipeline, oldest first. Hours the schedule owns or a
        detection run is judging are left alone, so no hour is judged (or its tweets published) twice."""
        if history_hours <= 0:
            return dg.SkipReason("History filling is off (SEED_HISTORY_HOURS=0).")
        if _has_active_run(context, history_job.name, HISTORY_SENSOR):
            return dg.SkipReason("A history run is already active.")
        judged = context.instance.get_materialized_partitions(tweet_anomalies.key)
        missing = hours_to_fill(clock(), history_hours, first_hour, judged | _detections_in_flight(context))
        if not missing:
            return dg.SkipReason(f"Every closed hour of the last {history_hours} is judged or being judged.")
        first, last = missing[0], missing[-1] + timedelta(hours=1)
        return history_run_request(first, last, f"fill {len(missing)} unjudged hours")

    return history_sensor
