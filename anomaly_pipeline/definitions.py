"""The Dagster code location: assets, sensors, schedule and the resources chosen by configuration.

Configuration enters here and nowhere else: `Settings.from_env()` reads the environment once and
each component's implementation (embedded default or cloud service) is picked from it.

The Databricks modules (dagster_databricks, databricks-sdk: seconds to import) are imported only
when `STREAM_ENGINE=databricks` chooses them, so the embedded defaults load fast.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

# Every asset takes `backfill_policy=BackfillPolicy.single_run()` (a backfill is one run), a
# parameter Dagster marks beta: its BetaWarning, printed by every process that loads this module
# (each run and step), would flood the logs. Silenced for that parameter only, before the assets load.
warnings.filterwarnings(
    "ignore", message=r"Parameter `backfill_policy` of function `asset`", category=dg.BetaWarning
)

from anomaly_pipeline.alerts import AlertSettings, alert_resources, alert_sensors
from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.automation import (
    build_poll_sensor,
    build_history_sensor,
    build_stream_sensor,
    detect_job,
    history_job,
    hourly_detection_schedule,
    ingest_job,
    stream_job,
)
from anomaly_pipeline.checks import ALL_CHECKS
from anomaly_pipeline.late_data import late_data_sensor, rejudge_job
from anomaly_pipeline.maintenance import storage_maintenance_job, storage_maintenance_schedule
from anomaly_pipeline.resources.delta_state import DeltaCheckpointStore, DeltaStateStore
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.detector import LocalAnomalyDetector, RestAnomalyDetector
from anomaly_pipeline.resources.event_hubs import EventHubsStream
from anomaly_pipeline.resources.local_event_log import LocalEventLog
from anomaly_pipeline.resources.local_tweet_sources import ReplayTweetSource, SyntheticTweetSource
from anomaly_pipeline.resources.state_store import StateStore
from anomaly_pipeline.resources.stream_engine import ExternalStreamEngine, LocalStreamEngine
from anomaly_pipeline.resources.tweet_source import DEFAULT_QUERY
from anomaly_pipeline.resources.x_api import XApiTweetSource
from anomaly_pipeline.settings import DETECTOR_KEY, Settings


def build_tweet_source(settings: Settings):
    query = settings.tweet_query or DEFAULT_QUERY
    if settings.tweet_source == "x_api":
        return XApiTweetSource(query=query, bearer_token=dg.EnvVar("X_BEARER_TOKEN"))
    if settings.tweet_source == "replay":
        return ReplayTweetSource(query=query, path=settings.replay_path)
    return SyntheticTweetSource(query=query, seed=settings.synthetic_seed)


def build_event_stream(settings: Settings, delta_store: DeltaStore):
    if settings.event_stream == "eventhubs":
        return EventHubsStream(
            connection_string=dg.EnvVar("EVENTHUB_CONNECTION_STRING"),
            eventhub_name=settings.eventhub_name,
            consumer_group=settings.eventhub_consumer_group,
            checkpoint_store=DeltaCheckpointStore(location=delta_store),
        )
    return LocalEventLog(path=str(Path(settings.data_dir) / "events.sqlite"))


def build_pipeline_state(settings: Settings, delta_store: DeltaStore):
    """The tweet cursor's store: next to the event stream it tracks (Event Hubs is shared by every
    machine, so its cursor lives under DELTA_ROOT; the local event log's, in DATA_DIR)."""
    if settings.event_stream == "eventhubs":
        return DeltaStateStore(location=delta_store)
    return StateStore(path=str(Path(settings.data_dir) / "state.sqlite"))


def build_detector(settings: Settings):
    if settings.detector == "rest":
        api_key = dg.EnvVar(DETECTOR_KEY) if settings.detector_key_set else None  # the key is optional
        return RestAnomalyDetector(
            endpoint=settings.detector_endpoint, api_key=api_key, sensitivity=settings.detector_sensitivity
        )
    return LocalAnomalyDetector(sensitivity=settings.detector_sensitivity)


def build_stream_engine(settings: Settings):
    if settings.stream_engine == "databricks":  # the Databricks job streams; runs only recompute
        return ExternalStreamEngine(consumer_group=settings.eventhub_consumer_group)
    return LocalStreamEngine(consumer_group=settings.eventhub_consumer_group)


def build_resources(settings: Settings) -> dict[str, object]:
    delta_store = DeltaStore.from_root(settings.delta_uri)  # names any missing AZURE_* variable
    resources = {
        "tweet_source": build_tweet_source(settings),
        "event_stream": build_event_stream(settings, delta_store),
        "pipeline_state": build_pipeline_state(settings, delta_store),
        "stream_engine": build_stream_engine(settings),
        "delta_store": delta_store,
        "anomaly_detector": build_detector(settings),
    }
    if settings.stream_engine == "databricks":
        from dagster_databricks import DatabricksClientResource

        from anomaly_pipeline.resources.databricks_stream import DatabricksStreamingJob

        resources["databricks_stream"] = DatabricksStreamingJob(
            databricks=DatabricksClientResource(
                host=dg.EnvVar("DATABRICKS_HOST"), token=dg.EnvVar("DATABRICKS_TOKEN")
            ),
            job_id=settings.databricks_job_id,
            delta_store=delta_store,
        )
    return resources


def build_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    # One writer of the Delta tables at a time: the embedded stream runs or the Databricks job.
    if settings.stream_engine == "databricks":
        from anomaly_pipeline.databricks.sensor import build_databricks_stream_sensor

        stream = build_databricks_stream_sensor(
            minimum_interval_seconds=settings.stream_check_interval_seconds
        )
    else:
        stream = build_stream_sensor(settings.stream_check_interval_seconds)
    return [
        build_poll_sensor(settings.poll_interval_seconds),
        stream,
        build_history_sensor(settings.seed_history_hours),
        late_data_sensor,
    ]


def build_definitions(settings: Settings, alerts: AlertSettings = AlertSettings()) -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_tweets, hourly_tweet_metrics, tweet_anomalies],
        asset_checks=ALL_CHECKS,
        jobs=[ingest_job, stream_job, detect_job, history_job, rejudge_job, storage_maintenance_job],
        sensors=[*build_sensors(settings), *alert_sensors(alerts)],  # alerts: off unless configured
        schedules=[hourly_detection_schedule, storage_maintenance_schedule],
        resources={**build_resources(settings), **alert_resources(alerts)},
    )


defs = build_definitions(Settings.from_env(), AlertSettings.from_env())
