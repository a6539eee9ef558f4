"""`dagster dev` serves the project: its GraphQL API lists the assets, sensors and schedule, and a
materialization launched through it succeeds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

DAGSTER = str(Path(sys.executable).with_name("dagster"))
REPO_ROOT = Path(__file__).resolve().parents[2]

OVERVIEW_QUERY = """
{
  assetNodes { assetKey { path } }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name location { name } sensors { name sensorState { status } } schedules { name scheduleState { status } } }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    """One `dagster dev` for the module (its start-up is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("dagster_dev")
    port = free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DATA_DIR": str(tmp_path / "data"),
        "SEED_HISTORY_HOURS": "0",
    }
    log = open(tmp_path / "dagster_dev.log", "w")
    process = subprocess.Popen(
        [DAGSTER, "dev", "--host", "127.0.0.1", "--port", str(port), "--workspace", "workspace.yaml"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # dagster dev ignores SIGTERM while SIGINT is ignored, as it is for background processes.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not start within 180 s"
            time.sleep(1)
        yield url, port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
BACKFILL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status } }
  }
}
"""


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = requests.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_dagster_dev_serves_the_pipeline_and_runs_a_materialization(dagster_dev):
    url, port = dagster_dev
    deadline = time.monotonic() + 120
    while True:  # the code location loads after the web server answers
        data = graphql(url, OVERVIEW_QUERY)
        if data["assetNodes"] or time.monotonic() > deadline:
            break
        time.sleep(1)

    assets = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
    assert assets == {"raw_tweets", "hourly_tweet_metrics", "tweet_anomalies"}
    (repository,) = data["repositoriesOrError"]["nodes"]
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert sensors["stream_sensor"] == "RUNNING"
    assert sensors["raw_tweets_poll_sensor"] == "RUNNING"
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
    assert schedules == {"hourly_detection_schedule": "RUNNING", "storage_maintenance_schedule": "RUNNING"}

    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(
        "pipeline_history_job",
        repository_location_name=repository["location"]["name"],
        repository_name=repository["name"],
        tags={
            "dagster/asset_partition_range_start": "2026-02-01-00:00",
            "dagster/asset_partition_range_end": "2026-02-01-05:00",
        },
    )
    deadline = time.monotonic() + 240
    status = None
    while time.monotonic() < deadline:
        try:
            status = client.get_run_status(run_id).value
        except DagsterGraphQLClientError:
            status = None
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"

    materialized = graphql(
        url,
        '{ assetNodes(assetKeys: [{path: ["tweet_anomalies"]}]) '
        "{ partitionStats { numMaterialized } } }",
    )
    assert materialized["assetNodes"][0]["partitionStats"]["numMaterialized"] == 6


def test_a_ui_backfill_over_past_hours_is_one_run(dagster_dev):
    """What the UI's "Materialize > backfill" does: launchPartitionBackfill, run by the daemon."""
    url, _ = dagster_dev
    deadline = time.monotonic() + 120
    while not graphql(url, OVERVIEW_QUERY)["assetNodes"] and time.monotonic() < deadline:
        time.sleep(1)
    hours = [f"2026-02-03-{hour:02d}:00" for hour in range(12)]
    launched = graphql(url, LAUNCH_BACKFILL, {"params": {
        "partitionNames": hours,
        "assetSelection": [{"path": [name]} for name in ("raw_tweets", "hourly_tweet_metrics", "tweet_anomalies")],
        "fromFailure": False,
    }})["launchPartitionBackfill"]  # fmt: skip
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = graphql(url, BACKFILL_STATUS, {"id": launched["backfillId"]})
        if status["partitionBackfillOrError"]["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "COMPLETED_FAILED", "CANCELED"):
            break
        time.sleep(2)
    assert status["partitionBackfillOrError"]["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), status
    runs = status["runsOrError"]["results"]
    assert len(runs) == 1 and runs[0]["status"] == "SUCCESS", runs
