"""`dagster dev` serves the project: its GraphQL API lists the assets, sensors and schedule, and a
materialization launched through it succeeds."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from anomaly_pipeline.alerts import partition_url
from anomaly_pipeline_tests.dagster_dev import running_dagster_dev
from anomaly_pipeline_tests.ui_capture import Browser, find_chromium

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
    env = {"DATA_DIR": str(tmp_path / "data"), "SEED_HISTORY_HOURS": "0"}
    with running_dagster_dev(tmp_path, port, env):
        yield f"http://127.0.0.1:{port}", port


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

    assert run_history_job(port, repository, "2026-02-01-00:00", "2026-02-01-05:00") == "SUCCESS"

    materialized = graphql(
        url,
        '{ assetNodes(assetKeys: [{path: ["tweet_anomalies"]}]) '
        "{ partitionStats { numMaterialized } } }",
    )
    assert materialized["assetNodes"][0]["partitionStats"]["numMaterialized"] == 6


def run_history_job(port: int, repository: dict, first_key: str, last_key: str) -> str | None:
    """Launch `pipeline_history_job` over [first_key, last_key] through GraphQL; its final status."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(
        "pipeline_history_job",
        repository_location_name=repository["location"]["name"],
        repository_name=repository["name"],
        tags={"dagster/asset_partition_range_start": first_key, "dagster/asset_partition_range_end": last_key},
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
    return status


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


def test_the_ui_renders_the_plots_of_a_runs_newest_hour(dagster_dev, tmp_path):
    """The newest hour of a run carries a PNG plot per metric, which the UI renders as an image
    (headless Chromium opens the partition, clicks the plot's entry and finds the decoded PNG);
    an older hour of the same run shows its own verdict and no plot."""
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    url, port = dagster_dev
    deadline = time.monotonic() + 120
    while not (data := graphql(url, OVERVIEW_QUERY))["assetNodes"] and time.monotonic() < deadline:
        time.sleep(1)
    (repository,) = data["repositoriesOrError"]["nodes"]
    assert run_history_job(port, repository, "2026-02-08-00:00", "2026-02-08-13:00") == "SUCCESS"
    graphql(url, "mutation { setNuxSeen }")  # no welcome dialog over the page

    with Browser() as page:  # through the link an alert carries
        page.open(partition_url(url, "2026-02-08-13:00"), ready=page.has_text("plot_tweet_count"))
        assert page.evaluate(page.shows("anomalies_last_7d")) and page.evaluate(page.shows("tweet_count_verdict"))
        page.click_text("[Show Markdown]")  # a long Markdown value opens in a dialog
        assert page.wait_for_inline_png() == [[640, 208]]
        page.screenshot(tmp_path / "plot.png")
        assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")

        page.open(partition_url(url, "2026-02-08-12:00"), ready=page.has_text("tweet_count_verdict"))
        assert not page.evaluate(page.shows("plot_tweet_count"))
