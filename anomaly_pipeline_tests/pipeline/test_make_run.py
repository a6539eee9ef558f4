"""`make run` as a user lives with it: a second one on a busy port or the same DAGSTER_HOME is
refused without touching the first, and Ctrl-C lets runs in flight finish or marks them canceled,
never failed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from anomaly_pipeline.devserver import HEARTBEAT_LIVE_SECONDS
from anomaly_pipeline_tests.pipeline.test_dagster_dev_smoke import OVERVIEW_QUERY, free_port, graphql

REPO_ROOT = Path(__file__).resolve().parents[2]
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def _make_run(port: int, home: Path, env: dict[str, str], **popen) -> subprocess.Popen:
    return subprocess.Popen(
        ["make", "-s", "run", f"PORT={port}", f"DAGSTER_HOME={home}"], cwd=REPO_ROOT, env=env,
        stdout=popen.pop("stdout", subprocess.PIPE), stderr=popen.pop("stderr", subprocess.PIPE), text=True,
        **popen,
    )  # fmt: skip


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DATA_DIR": str(tmp_path / "data"), "SEED_HISTORY_HOURS": "0"}


def _refused(port: int, home: Path, env: dict[str, str]) -> tuple[str, float]:
    started = time.monotonic()
    process = _make_run(port, home, env)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0, err
    return err, time.monotonic() - started


def test_make_run_on_a_busy_port_exits_at_once_with_a_clear_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err, seconds = _refused(port, tmp_path / "home", _env(tmp_path))
    assert f"port {port} on 127.0.0.1 is already in use" in err and f"make run PORT={port + 1}" in err
    assert seconds < 20


@pytest.fixture
def first_make_run(tmp_path):
    """A real `make run` in a session of its own, like a terminal's foreground job."""
    port, home, env = free_port(), tmp_path / "home", _env(tmp_path)
    log = open(tmp_path / "make_run.log", "w")
    process = _make_run(port, home, env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _serves(url):
            assert process.poll() is None, (tmp_path / "make_run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "make run did not serve within 180 s"
            time.sleep(1)
        while not graphql(url, OVERVIEW_QUERY)["assetNodes"]:  # the code location loads after the web server
            assert time.monotonic() < deadline, "the code location did not load"
            time.sleep(1)
        yield process, port, home, env, tmp_path / "make_run.log"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _serves(url: str) -> bool:
    try:
        return requests.get(f"{url}/server_info", timeout=2).ok
    except requests.ConnectionError:
        return False


def _heartbeat_age(instance: dg.DagsterInstance) -> float:
    beats = instance.get_daemon_heartbeats().values()
    return time.time() - max(beat.timestamp for beat in beats) if beats else float("inf")


def _submit_history_run(port: int) -> tuple[DagsterGraphQLClient, str]:
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(
        "pipeline_history_job",
        tags={"dagster/asset_partition_range_start": "2026-02-01-00:00",
              "dagster/asset_partition_range_end": "2026-02-02-23:00"},
    )  # fmt: skip
    return client, run_id


def _wait_for_status(client: DagsterGraphQLClient, run_id: str, wanted: set[str], seconds: float) -> str:
    deadline, status = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        try:
            status = client.get_run_status(run_id).value
        except DagsterGraphQLClientError:
            status = None
        if status in wanted:
            return status
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} is {status}, not {wanted}, after {seconds} s")


def test_a_second_make_run_is_refused_and_ctrl_c_never_fails_a_run(first_make_run):
    process, port, home, env, log = first_make_run
    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 90
        while _heartbeat_age(instance) > HEARTBEAT_LIVE_SECONDS:
            assert time.monotonic() < deadline, "the daemon sent no heartbeat"
            time.sleep(1)

        err, seconds = _refused(port, home, env)  # same port
        assert f"port {port} on 127.0.0.1 is already in use" in err and seconds < 30
        err, seconds = _refused(free_port(), home, env)  # another port, same DAGSTER_HOME
        assert "another `make run`" in err and "is using DAGSTER_HOME" in err and seconds < 30
        assert _serves(f"http://127.0.0.1:{port}") and process.poll() is None  # the first is untouched

        client, run_id = _submit_history_run(port)
        _wait_for_status(client, run_id, {"STARTED"} | FINISHED, 120)
        interrupted_at = time.time()
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        process.wait(timeout=300)

        record = instance.get_run_record_by_id(run_id)
        assert record.dagster_run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED), log.read_text()[-3000:]
        assert record.end_time and record.end_time > interrupted_at  # it was in flight at Ctrl-C
        statuses = {run.run_id: run.status for run in instance.get_runs()}
        assert not [run for run, status in statuses.items() if status == dg.DagsterRunStatus.FAILURE], statuses
        assert all(status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED) for status in statuses.values()), statuses
        assert instance.get_daemon_heartbeats() == {}  # a clean stop: the next make run may start at once
