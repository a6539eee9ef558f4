"""The Databricks sensor, resource and job deployment against an autospecced WorkspaceClient (the
Databricks REST edge is the only thing faked; the hourly Delta table is real, on local disk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import dagster as dg
import polars as pl
import pytest
from dagster_databricks import DatabricksClientResource
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import jobs

from anomaly_pipeline.databricks.job_spec import JobConfig, build_job_settings, deploy_job
from anomaly_pipeline.databricks.sensor import StreamCursor, build_databricks_stream_sensor, decide
from anomaly_pipeline.databricks.workspace import DatabricksUnreachable
from anomaly_pipeline.resources.databricks_stream import DatabricksStreamingJob, RunInfo
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS
from anomaly_pipeline_tests.cloud.endpoints import silent_server

JOB_ID = 123
HOUR = datetime(2026, 11, 22, 18, tzinfo=timezone.utc)


class FakeStream:
    """The event stream's lag/checkpoint interface, in memory."""

    def __init__(self, published: dict[str, int]):
        self.published = published  # last sequence number per partition
        self.checkpoints: dict[str, dict[str, int]] = {}

    def load_checkpoints(self, consumer_group="$Default"):
        return {p: self.checkpoints.get(consumer_group, {}).get(p, -1) for p in self.published}

    def save_checkpoints(self, positions, consumer_group="$Default"):
        self.checkpoints.setdefault(consumer_group, {}).update(positions)

    def lag(self, consumer_group="$Default"):
        done = self.load_checkpoints(consumer_group)
        return {p: last - done[p] for p, last in self.published.items()}


def _run(run_id, life="RUNNING", result=None, message=""):
    return jobs.BaseRun(
        run_id=run_id,
        run_page_url=f"https://adb-1.azuredatabricks.net/jobs/{JOB_ID}/runs/{run_id}",
        state=jobs.RunState(
            life_cycle_state=jobs.RunLifeCycleState(life),
            result_state=jobs.RunResultState(result) if result else None,
            state_message=message,
        ),
    )


@pytest.fixture
def workspace():
    ws = mock.create_autospec(WorkspaceClient, instance=True)
    ws.jobs.list_runs.return_value = iter([])
    ws.jobs.run_now.return_value.response = jobs.RunNowResponse(run_id=555)
    return ws


@pytest.fixture
def store(tmp_path):
    return DeltaStore(root_uri=str(tmp_path / "delta"))


@pytest.fixture
def resource(workspace, store):
    job = DatabricksStreamingJob(
        databricks=DatabricksClientResource(host="https://adb-1.azuredatabricks.net", token="not-a-token"),
        job_id=JOB_ID,
        delta_store=store,
    )
    with mock.patch.object(DatabricksStreamingJob, "workspace_client", return_value=workspace):
        yield job


def _tick(resource, stream, cursor=None):
    sensor = build_databricks_stream_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
    with dg.build_sensor_context(
        cursor=cursor, resources={"databricks_stream": resource, "event_stream": stream}
    ) as context:
        return sensor(context)


def _write_hours(store, hours, updated_at):
    store.merge(
        HOURLY_TWEET_METRICS,
        pl.DataFrame({"hour": hours, "tweet_count": [1] * len(hours), "like_sum": [2] * len(hours),
                      "avg_likes": [2.0] * len(hours), "retweet_sum": [0] * len(hours),
                      "reply_sum": [0] * len(hours), "quote_sum": [0] * len(hours),
                      "updated_at": [updated_at] * len(hours)}),
    )


def test_lag_without_active_run_starts_one_and_does_not_wait(resource, workspace):
    stream = FakeStream({"0": 9, "1": 4})
    result = _tick(resource, stream)
    workspace.jobs.run_now.assert_called_once_with(job_id=JOB_ID, job_parameters={"mode": "available-now"})
    workspace.jobs.run_now.return_value.result.assert_not_called()
    workspace.jobs.list_runs.assert_called_once_with(job_id=JOB_ID, active_only=True)
    cursor = StreamCursor.from_json(result.cursor)
    assert cursor.run_id == 555 and cursor.target_positions == {"0": 9, "1": 4}
    assert "Started Databricks run 555" in result.skip_reason.skip_message


def test_active_run_skips(resource, workspace):
    workspace.jobs.list_runs.return_value = iter([_run(77)])
    result = _tick(resource, FakeStream({"0": 9}))
    workspace.jobs.run_now.assert_not_called()
    assert "run 77 is RUNNING" in result.skip_reason.skip_message


def test_no_lag_skips(resource, workspace):
    stream = FakeStream({"0": 3})
    stream.save_checkpoints({"0": 3}, "databricks")
    result = _tick(resource, stream)
    workspace.jobs.run_now.assert_not_called()
    assert "No events waiting" in result.skip_reason.skip_message


def test_successful_run_advances_the_checkpoints(resource, workspace):
    stream = FakeStream({"0": 12})
    workspace.jobs.get_run.return_value = _run(555, "TERMINATED", "SUCCESS")
    cursor = StreamCursor(run_id=555, target_positions={"0": 12}).to_json()
    result = _tick(resource, stream, cursor)
    workspace.jobs.get_run.assert_called_once_with(run_id=555)
    assert stream.load_checkpoints("databricks") == {"0": 12}
    workspace.jobs.run_now.assert_not_called()
    assert StreamCursor.from_json(result.cursor).run_id is None


def test_failed_run_is_reported_with_its_state_message(resource, workspace):
    stream = FakeStream({"0": 12})
    workspace.jobs.get_run.return_value = _run(555, "TERMINATED", "FAILED", "Kafka auth failed")
    cursor = StreamCursor(run_id=555, target_positions={"0": 12}).to_json()
    result = _tick(resource, stream, cursor)
    message = result.skip_reason.skip_message
    assert "run 555 ended FAILED: Kafka auth failed" in message
    assert f"/jobs/{JOB_ID}/runs/555" in message
    observation = next(e for e in result.asset_events if isinstance(e, dg.AssetObservation))
    assert observation.metadata["state_message"].value == "Kafka auth failed"
    assert observation.metadata["databricks_state"].value == "FAILED"
    assert stream.load_checkpoints("databricks") == {"0": -1}  # nothing acknowledged
    workspace.jobs.run_now.assert_not_called()
    assert StreamCursor.from_json(result.cursor).run_id is None


def test_updated_partitions_are_reported_as_materializations(resource, workspace, store):
    stream = FakeStream({"0": 0})
    stream.save_checkpoints({"0": 0}, "databricks")
    first = _tick(resource, stream)  # no table yet
    assert first.asset_events == []
    _write_hours(store, [HOUR, HOUR.replace(hour=19)], datetime.now(timezone.utc))
    second = _tick(resource, stream, first.cursor)
    keys = [(e.asset_key.path, e.partition) for e in second.asset_events]
    assert keys == [(["hourly_tweet_metrics"], "2026-11-22-18:00"), (["hourly_tweet_metrics"], "2026-11-22-19:00")]
    _write_hours(store, [HOUR.replace(hour=20)], datetime.now(timezone.utc))
    third = _tick(resource, stream, second.cursor)
    assert [e.partition for e in third.asset_events] == ["2026-11-22-20:00"]
    fourth = _tick(resource, stream, third.cursor)
    assert fourth.asset_events == []


def test_existing_table_is_a_baseline_on_first_sight(resource, store):
    _write_hours(store, [HOUR], datetime.now(timezone.utc))
    version = store.version(HOURLY_TWEET_METRICS)
    assert resource.updated_hours_since(None) == ([], version)
    assert resource.updated_hours_since(-1) == ([HOUR], version)
    assert resource.updated_hours_since(version) == ([], version)


def test_decide_is_pure():
    cursor = StreamCursor(run_id=1, target_positions={"0": 5}, metrics_version=3)
    running = RunInfo(run_id=1, life_cycle_state="RUNNING")
    decision = decide(cursor, running, running, {"0": 2}, {"0": 3})
    assert not decision.start_run and decision.cursor == cursor
    ended = RunInfo(run_id=1, life_cycle_state="INTERNAL_ERROR", state_message="driver lost")
    decision = decide(cursor, ended, None, {"0": 2}, {"0": 3})
    assert decision.failed_run == ended and not decision.start_run


def test_deploy_job_creates_when_absent(workspace):
    workspace.jobs.list.return_value = iter([])
    workspace.jobs.create.return_value = jobs.CreateResponse(job_id=42)
    spec = build_job_settings(JobConfig(delta_root="abfss://c@a.dfs.core.windows.net/x",
                                        checkpoint="abfss://c@a.dfs.core.windows.net/x/_ckpt",
                                        eventhub_namespace="ns"))
    assert deploy_job(workspace, spec) == 42
    workspace.jobs.list.assert_called_once_with(name="anomaly-pipeline-stream")
    kwargs = workspace.jobs.create.call_args.kwargs
    assert kwargs["max_concurrent_runs"] == 1 and kwargs["name"] == "anomaly-pipeline-stream"
    task = kwargs["tasks"][0]
    assert task.spark_python_task.python_file.endswith("streaming_job.py")
    assert "{{job.parameters.mode}}" in task.spark_python_task.parameters
    workspace.jobs.reset.assert_not_called()


def test_deploy_job_resets_an_existing_job(workspace):
    spec = build_job_settings(JobConfig(delta_root="d", checkpoint="c", eventhub_namespace="ns"))
    workspace.jobs.list.return_value = iter([jobs.BaseJob(job_id=9, settings=jobs.JobSettings(name=spec.name))])
    assert deploy_job(workspace, spec) == 9
    workspace.jobs.reset.assert_called_once_with(job_id=9, new_settings=spec)
    workspace.jobs.create.assert_not_called()


def test_dry_run_prints_the_job_json(capsys):
    import argparse

    from anomaly_pipeline.databricks import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["databricks", "deploy-job", "--dry-run", "--eventhub-namespace", "ns"])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["max_concurrent_runs"] == 1
    assert printed["tasks"][0]["spark_python_task"]["python_file"].endswith("streaming_job.py")


# ------------------------------------------------------------------ an unreachable workspace

TOKEN = "dapi-not-a-real-token-0123456789"


def test_deploy_job_against_a_workspace_that_never_answers_says_what_to_check_in_bounded_time():
    with silent_server() as host:
        env = {**os.environ, "DATABRICKS_HOST": host, "DATABRICKS_TOKEN": TOKEN}
        started = time.monotonic()
        done = subprocess.run(
            [str(Path(sys.executable).with_name("anomaly-pipeline")), "databricks", "deploy-job",
             "--eventhub-namespace", "ns", "--timeout", "2"],
            env=env, capture_output=True, text=True, timeout=120)
        seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-2000:]
    assert seconds < 30
    assert "Deploying 'anomaly-pipeline-stream' to the Databricks workspace at DATABRICKS_HOST" in done.stderr
    assert ("error: The Databricks workspace at DATABRICKS_HOST did not answer within 2 s (no answer): "
            "check that DATABRICKS_HOST is the workspace URL") in done.stderr
    port = host.rsplit(":", 1)[1]
    assert port not in done.stderr and TOKEN not in done.stderr and "Traceback" not in done.stderr


def test_the_sensor_tick_ends_in_time_on_a_workspace_that_never_answers(store):
    with silent_server() as host:
        job = DatabricksStreamingJob(
            databricks=DatabricksClientResource(host=host, token=TOKEN), job_id=JOB_ID,
            delta_store=store, http_timeout_seconds=1, retry_timeout_seconds=2)
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            _tick(job, FakeStream({"0": 9}))
        seconds = time.monotonic() - started
    assert seconds < 20  # a tick may take 60 s
    chain, error = [], raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    unreachable = next(e for e in chain if isinstance(e, DatabricksUnreachable))
    assert str(unreachable).startswith(
        "The Databricks workspace at DATABRICKS_HOST did not answer within 2 s (no answer)")
    assert TOKEN not in str(unreachable) and host not in str(unreachable)


def test_workspace_calls_are_bounded_by_default(store):
    job = DatabricksStreamingJob(databricks=DatabricksClientResource(host="https://adb-1.azuredatabricks.net",
                                                                     token=TOKEN),
                                 job_id=JOB_ID, delta_store=store)
    config = job.workspace_client().config
    # worst case: the last retry starts just before the retry deadline and waits one request
    assert config.retry_timeout_seconds + config.http_timeout_seconds <= 30 < 60
