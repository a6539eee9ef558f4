"""The Dagster code location: assets, sensors, schedule and the resources chosen by configuration.

Configuration enters here and nowhere else: `Settings.from_env()` reads the environment once and
each component's implementation (embedded default or cloud service) is picked from it.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.automation import (
    build_poll_sensor,
    build_seed_history_sensor,
    build_stream_sensor,
    detect_job,
    history_job,
    hourly_detection_schedule,
    ingest_job,
    stream_job,
)
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.detector import LocalAnomalyDetector
from anomaly_pipeline.resources.local_event_log import LocalEventLog
from anomaly_pipeline.resources.local_tweet_sources import SyntheticTweetSource
from anomaly_pipeline.resources.state_store import StateStore
from anomaly_pipeline.resources.stream_engine import LocalStreamEngine
from anomaly_pipeline.settings import Settings


def build_resources(settings: Settings) -> dict[str, object]:
    data_dir = Path(settings.data_dir)
    return {
        "tweet_source": SyntheticTweetSource(seed=settings.synthetic_seed),
        "event_stream": LocalEventLog(path=str(data_dir / "events.sqlite")),
        "pipeline_state": StateStore(path=str(data_dir / "state.sqlite")),
        "stream_engine": LocalStreamEngine(),
        "delta_store": DeltaStore(root_uri=settings.delta_uri),
        "anomaly_detector": LocalAnomalyDetector(),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_tweets, hourly_tweet_metrics, tweet_anomalies],
        jobs=[ingest_job, stream_job, detect_job, history_job],
        sensors=[
            build_poll_sensor(settings.poll_interval_seconds),
            build_stream_sensor(settings.stream_check_interval_seconds),
            build_seed_history_sensor(settings.seed_history_hours),
        ],
        schedules=[hourly_detection_schedule],
        resources=build_resources(settings),
    )


defs = build_definitions(Settings.from_env())
