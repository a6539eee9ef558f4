"""Sensors and the schedule decide what to run; definitions load with all of them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.storage.tags import MAX_RUNTIME_SECONDS_TAG
from dagster._core.test_utils import freeze_time
from dagster._core.utils import make_new_run_id

from anomaly_pipeline.automation import (
    build_poll_sensor,
    build_history_sensor,
    build_stream_sensor,
    hourly_detection_schedule,
)
from anomaly_pipeline.dead_runs import runs_are_local_processes
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


# ------------------------------------------------------------------ runs that died unnoticed

STUCK_STREAM_RUN = '''
import sys, time
import dagster as dg
from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.automation import stream_job
from anomaly_pipeline.definitions import build_resources
from anomaly_pipeline.resources.local_event_log import LocalEventLog
from anomaly_pipeline.settings import Settings


class BusyEventLog(LocalEventLog):
    def load_checkpoints(self, consumer_group="$Default"):
        print("streaming", flush=True)  # the run is STARTED, inside its stream step
        time.sleep(600)


resources = build_resources(Settings.from_env())
resources["event_stream"] = BusyEventLog(path=resources["event_stream"].path)
defs = dg.Definitions(assets=[raw_tweets, hourly_tweet_metrics, tweet_anomalies], jobs=[stream_job],
                      resources=resources)
with dg.DagsterInstance.get() as instance:
    defs.resolve_job_def(stream_job.name).execute_in_process(instance=instance, partition_key=sys.argv[1])
'''


def _evaluate_stream_sensor(instance, stream):
    return build_stream_sensor(30)(dg.build_sensor_context(instance=instance, resources={"event_stream": stream}))


def test_a_killed_streaming_run_does_not_block_the_stream(tmp_path, data_dir, resources):
    stream = resources["event_stream"]
    stream.publish([("1", '{"id": "1"}')])
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATA_DIR": str(data_dir)}
    with dg.instance_for_test(temp_dir=str(home)) as instance:  # on disk, as `dagster dev` has it
        worker = subprocess.Popen([sys.executable, "-c", STUCK_STREAM_RUN, _current_hour()], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert worker.stdout.readline().strip() == "streaming"
            (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="stream_tweets_job"))
            assert run.status == dg.DagsterRunStatus.STARTED
            alive = _evaluate_stream_sensor(instance, stream)
            assert isinstance(alive, dg.SkipReason) and "already active" in alive.skip_message
        finally:
            worker.kill()  # kill -9: nothing is left to report the run's end
            worker.wait()
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED

        resumed = _evaluate_stream_sensor(instance, stream)
        assert isinstance(resumed, dg.RunRequest)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        failure = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)[-1]
        assert failure.message == (f"Marked failed by stream_sensor: its run worker process (pid "
                                   f"{worker.pid}) is gone.")


def _run_started_at(instance, moment: datetime) -> dg.DagsterRun:
    """A stream run that started at `moment` and has written nothing since."""
    with freeze_time(moment):
        run = instance.add_run(dg.DagsterRun(job_name="stream_tweets_job", run_id=make_new_run_id(),
                                             status=dg.DagsterRunStatus.NOT_STARTED))
        instance.report_dagster_event(
            DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name), run.run_id)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    return run


def test_a_run_left_started_and_silent_does_not_block_the_stream(resources, instance):
    stream = resources["event_stream"]
    stream.publish([("1", '{"id": "1"}')])
    now = datetime.now(timezone.utc)

    quiet = _run_started_at(instance, now - timedelta(minutes=5))  # within the silence limit
    assert isinstance(_evaluate_stream_sensor(instance, stream), dg.SkipReason)
    assert instance.get_run_by_id(quiet.run_id).status == dg.DagsterRunStatus.STARTED
    instance.report_run_failed(quiet)

    left = _run_started_at(instance, now - timedelta(hours=1))
    assert isinstance(_evaluate_stream_sensor(instance, stream), dg.RunRequest)
    assert instance.get_run_by_id(left.run_id).status == dg.DagsterRunStatus.FAILURE
    failure = instance.all_logs(left.run_id, of_type=DagsterEventType.RUN_FAILURE)[-1]
    assert failure.message.startswith("Marked failed by stream_sensor: it has written no event for 36")
    assert failure.message.endswith("s (limit 600 s).")


def test_the_makefiles_instance_enables_run_monitoring(tmp_path):
    home = tmp_path / "dagster_home"
    subprocess.run(["make", "-s", f"DAGSTER_HOME={home}", f"{home}/dagster.yaml"],
                   cwd=Path(__file__).parents[2], check=True, timeout=60)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_poll_interval_seconds <= 60
        assert instance.run_monitoring_max_resume_run_attempts == 0  # the default launcher cannot resume
        assert runs_are_local_processes(instance)  # so the sensors can check run workers' pids
    jobs = {job.name: job for job in defs.get_repository_def().get_all_jobs()}
    for name in ("stream_tweets_job", "ingest_tweets_job"):  # run monitoring ends them when hung
        assert int(jobs[name].tags[MAX_RUNTIME_SECONDS_TAG]) == 1800


def _current_hour() -> str:
    return partition_key(datetime.now(timezone.utc))
