"""Sensors and the schedule decide what to run; definitions load with all of them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from anomaly_pipeline.automation import (
    build_poll_sensor,
    build_history_sensor,
    build_stream_sensor,
    hourly_detection_schedule,
)
from anomaly_pipeline.definitions import defs
from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline_tests.conftest import utc


def test_definitions_load_with_assets_sensors_and_schedule():
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    asset_keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert asset_keys == {"raw_tweets", "hourly_tweet_metrics", "tweet_anomalies"}
    sensors = {sensor.name: sensor for sensor in repository.sensor_defs}
    assert {"raw_tweets_poll_sensor", "stream_sensor", "history_sensor"} <= set(sensors)
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values()
               if s.name != "databricks_stream_sensor")  # fmt: skip
    schedule = repository.get_schedule_def("hourly_detection_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    for key in asset_keys:
        assert repository.assets_defs_by_key[dg.AssetKey(key)].backfill_policy == dg.BackfillPolicy.single_run()


def test_schedule_targets_the_hour_that_just_closed():
    context = dg.build_schedule_context(scheduled_execution_time=utc(2026, 6, 1, 14, 3))
    request = hourly_detection_schedule(context)
    assert request.partition_key == "2026-06-01-13:00"


def test_stream_sensor_runs_only_when_events_wait_past_the_checkpoint(resources, instance):
    sensor = build_stream_sensor(30)
    stream = resources["event_stream"]

    def evaluate():
        context = dg.build_sensor_context(instance=instance, resources={"event_stream": stream})
        return sensor(context)

    assert isinstance(evaluate(), dg.SkipReason)
    report = stream.publish([("1", '{"id": "1"}'), ("2", '{"id": "2"}')])
    request = evaluate()
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == partition_key(datetime.now(timezone.utc))
    assert request.tags["pending_events"] == "2"
    stream.save_checkpoints(report.last_sequence_numbers)
    assert isinstance(evaluate(), dg.SkipReason)


def test_poll_sensor_requests_the_current_hour(instance):
    request = build_poll_sensor(60)(dg.build_sensor_context(instance=instance))
    assert request.partition_key == partition_key(datetime.now(timezone.utc))


def test_history_sensor_seeds_then_fills_only_the_gaps(instance):
    closed = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    sensor = build_history_sensor(72, clock=lambda: closed + timedelta(hours=1, minutes=30))  # past the schedule's turn
    hours = [closed - timedelta(hours=h) for h in range(72)]

    seed = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(seed, dg.RunRequest)
    assert seed.tags["dagster/asset_partition_range_start"] == partition_key(hours[-1])
    assert seed.tags["dagster/asset_partition_range_end"] == partition_key(closed)

    gap = set(hours[10:13])  # three hours the schedule missed, e.g. while the machine was off
    for hour in set(hours) - gap:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="tweet_anomalies", partition=partition_key(hour))
        )
    fill = sensor(dg.build_sensor_context(instance=instance))
    assert fill.tags["dagster/asset_partition_range_start"] == partition_key(min(gap))
    assert fill.tags["dagster/asset_partition_range_end"] == partition_key(max(gap))

    for hour in gap:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="tweet_anomalies", partition=partition_key(hour))
        )
    assert isinstance(sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)


def test_history_sensor_never_asks_for_hours_before_the_first_partition(instance):
    closed = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    first = closed - timedelta(hours=9)  # PARTITIONS_START ten hours ago
    sensor = build_history_sensor(168, first_hour=first, clock=lambda: closed + timedelta(hours=1, minutes=30))
    request = sensor(dg.build_sensor_context(instance=instance))
    assert request.tags["dagster/asset_partition_range_start"] == partition_key(first)
    assert request.tags["dagster/asset_partition_range_end"] == partition_key(closed)
