"""`Settings` (environment switches) and `DeltaLocation` (Delta root + ADLS credentials)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster_deltalake import AzureConfig, LocalConfig

from anomaly_pipeline.definitions import build_detector
from anomaly_pipeline.resources.delta_location import DeltaLocation, DeltaLocationError
from anomaly_pipeline.settings import Settings, SettingsError
from anomaly_pipeline_tests.cloud.endpoints import blob_endpoint, closed_port, route_adls_to, silent_server

ROOT = "abfss://tweets@anomalystore.dfs.core.windows.net/pipeline"
ACCOUNT_KEY = "bm90LWEtcmVhbC1rZXktYnV0LXNoYXBlZC1saWtlLW9uZQ=="
CLIENT_SECRET = "fake~client~secret~value~0123456789"
CLOUD = {
    "TWEET_SOURCE": "x_api",
    "EVENT_STREAM": "eventhubs",
    "EVENTHUB_NAME": "tweets",
    "STREAM_ENGINE": "databricks",
    "DATABRICKS_JOB_ID": "123",
    "DELTA_ROOT": ROOT,
    "DETECTOR": "rest",
    "DETECTOR_ENDPOINT": "https://detector.example.org",
}
SECRETS = {"X_BEARER_TOKEN": "tok-value-1", "EVENTHUB_CONNECTION_STRING": "Endpoint=sb://x/;k=v",
           "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY, "AZURE_CLIENT_SECRET": CLIENT_SECRET}


def test_defaults_are_the_embedded_implementations():
    settings = Settings.from_env({})
    assert (settings.tweet_source, settings.event_stream, settings.stream_engine,
            settings.detector) == ("synthetic", "local", "local", "local")
    assert Path(settings.data_dir).is_absolute() and Path(settings.data_dir).name == ".data"
    assert settings.delta_uri == str(Path(settings.data_dir) / "delta")
    assert not settings.delta_is_remote
    assert settings.required_secrets() == ()
    assert settings.eventhub_consumer_group == "$Default"


def test_full_cloud_configuration():
    settings = Settings.from_env({**CLOUD, **SECRETS, "TWEET_QUERY": "#Azure lang:en"})
    assert settings.tweet_source == "x_api" and settings.event_stream == "eventhubs"
    assert settings.databricks_job_id == 123 and settings.delta_is_remote
    assert settings.tweet_query == "#Azure lang:en"
    assert settings.required_secrets() == (
        "X_BEARER_TOKEN", "EVENTHUB_CONNECTION_STRING", "DATABRICKS_HOST", "DATABRICKS_TOKEN")
    text = repr(settings)
    assert all(value not in text for value in SECRETS.values())  # secrets are not read


def test_settings_are_frozen():
    with pytest.raises(Exception):
        Settings.from_env({}).tweet_source = "x_api"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["TWEET_SOURCE", "EVENT_STREAM", "STREAM_ENGINE", "DETECTOR"])
def test_invalid_choice_names_the_variable(name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: "cloudy"})


@pytest.mark.parametrize("env, missing", [
    ({"TWEET_SOURCE": "replay"}, "REPLAY_PATH"),
    ({"EVENT_STREAM": "eventhubs"}, "EVENTHUB_NAME"),
    ({**CLOUD, "DATABRICKS_JOB_ID": ""}, "DATABRICKS_JOB_ID"),
    ({"DETECTOR": "rest"}, "DETECTOR_ENDPOINT"),
])
def test_missing_required_variable_is_named(env, missing):
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env)


@pytest.mark.parametrize("env, named", [
    ({**CLOUD, "EVENT_STREAM": "local"}, "EVENT_STREAM=eventhubs"),
    ({**CLOUD, "DELTA_ROOT": ""}, "DELTA_ROOT=abfss://"),
    ({"DELTA_ROOT": "s3://bucket/prefix"}, "DELTA_ROOT"),
    ({"DELTA_ROOT": "abfss://UPPER@acct.dfs.core.windows.net/x"}, "DELTA_ROOT"),
    ({"DETECTOR": "rest", "DETECTOR_ENDPOINT": "detector:8080"}, "DETECTOR_ENDPOINT"),
    ({"DATABRICKS_JOB_ID": "job-7"}, "DATABRICKS_JOB_ID"),
])
def test_inconsistent_or_malformed_settings_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named.replace("+", r"\+")):
        Settings.from_env({**env, **SECRETS})


@pytest.mark.parametrize("raw", ["100", "-1", "high"])
def test_a_sensitivity_outside_0_to_99_names_the_variable(raw):
    with pytest.raises(SettingsError, match="DETECTOR_SENSITIVITY"):
        Settings.from_env({"DETECTOR_SENSITIVITY": raw})


@pytest.mark.parametrize("env", [{}, {"DETECTOR": "rest", "DETECTOR_ENDPOINT": "https://detector.example.org"}])
def test_the_detector_takes_its_sensitivity_from_the_environment(env):
    assert build_detector(Settings.from_env(env)).sensitivity == 95  # the tutorial's
    assert build_detector(Settings.from_env({**env, "DETECTOR_SENSITIVITY": "90"})).sensitivity == 90


def test_errors_never_echo_secret_values():
    for env in ({**CLOUD, "EVENT_STREAM": "local"}, {"TWEET_SOURCE": "nope"},
                {**CLOUD, "DATABRICKS_JOB_ID": ""}):
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({**env, **SECRETS})
        assert all(value not in str(raised.value) for value in SECRETS.values())


# ------------------------------------------------------------------ DeltaLocation


def test_local_root():
    location = DeltaLocation.from_root("data/anomaly/delta", environ={})
    assert isinstance(location.storage_options, LocalConfig)
    assert location.table_uri("tweets") == "data/anomaly/delta/tweets"
    assert location.storage_options_dict() == {}
    with pytest.raises(ValueError):
        location.table_uri("../escape")


TIMEOUTS = {"timeout": "30000ms", "connect_timeout": "5000ms", "retry_timeout": "30000ms"}


@pytest.fixture
def adls(monkeypatch):
    """An ADLS endpoint on 127.0.0.1 that answers (every container empty)."""
    with blob_endpoint() as url:
        route_adls_to(monkeypatch, url)
        yield url


def test_adls_with_account_key_resolves_at_run_time(monkeypatch, adls):
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY)
    location = DeltaLocation.from_root(ROOT)
    assert location.table_uri("hourly_tweet_metrics") == f"{ROOT}/hourly_tweet_metrics"
    assert ACCOUNT_KEY not in repr(location)
    with dg.build_resources({"delta": location}) as built:
        assert built.delta.storage_options_dict() == {
            "account_name": "anomalystore", "account_key": ACCOUNT_KEY, **TIMEOUTS}
        assert ACCOUNT_KEY not in repr(built.delta) and ACCOUNT_KEY not in str(built.delta)


def test_adls_with_service_principal_and_account_from_env(monkeypatch, adls):
    for name, value in {"AZURE_STORAGE_ACCOUNT_NAME": "anomalystore", "AZURE_CLIENT_ID": "cid",
                        "AZURE_CLIENT_SECRET": CLIENT_SECRET, "AZURE_TENANT_ID": "tid"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_KEY", raising=False)
    location = DeltaLocation.from_root("abfss://tweets/pipeline")  # account from the variable
    with dg.build_resources({"delta": location}) as built:
        assert built.delta.storage_options_dict() == {
            "account_name": "anomalystore", "client_id": "cid", "client_secret": CLIENT_SECRET,
            "tenant_id": "tid", **TIMEOUTS}
        assert CLIENT_SECRET not in repr(built.delta)


def _adls_failure(location: DeltaLocation) -> tuple[str, float]:
    """The error a run gets when it starts with `location`, and how long it took to come."""
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        with dg.build_resources({"delta": location}):
            pass
    error: BaseException | None = raised.value
    while error is not None and not isinstance(error, DeltaLocationError):
        error = error.__cause__ or error.__context__
    assert error is not None, raised.value
    return str(error), time.monotonic() - started


def _adls_location(**timeouts) -> DeltaLocation:
    return DeltaLocation(root_uri=ROOT, storage_options=AzureConfig(
        account_name="anomalystore", account_key=ACCOUNT_KEY), **timeouts)


def test_adls_that_never_answers_fails_the_run_start_in_bounded_time(monkeypatch):
    with silent_server() as url:
        route_adls_to(monkeypatch, url)
        message, seconds = _adls_failure(_adls_location(request_timeout_seconds=1, retry_timeout_seconds=2))
    assert seconds < 15
    assert message.startswith("Azure storage (ADLS Gen2, DELTA_ROOT) cannot be used: operation timed out. "
                              "Check the storage account (anomalystore) and container (tweets) in DELTA_ROOT")
    assert "anomalystore.dfs.core.windows.net (network, firewall" in message
    assert ACCOUNT_KEY not in message and "Generic MicrosoftAzure error" not in message


def test_adls_refusing_connections_fails_fast_with_the_default_timeouts(monkeypatch):
    route_adls_to(monkeypatch, closed_port())
    message, seconds = _adls_failure(_adls_location())
    assert seconds < 15
    assert "cannot be used: Connection refused" in message and "DELTA_ROOT" in message


def test_adls_refusing_the_credential_names_the_credential_variables(monkeypatch):
    with blob_endpoint(status=403) as url:
        route_adls_to(monkeypatch, url)
        message, _ = _adls_failure(_adls_location())
    assert "cannot be used: HTTP 403 Forbidden (AuthenticationFailed)" in message
    assert "AZURE_STORAGE_ACCOUNT_KEY or all of AZURE_CLIENT_ID" in message
    assert ACCOUNT_KEY not in message


def test_adls_without_account_names_the_variable():
    with pytest.raises(DeltaLocationError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        DeltaLocation.from_root("abfss://tweets/pipeline",
                                environ={"AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY})


def test_adls_without_credential_names_the_variables():
    with pytest.raises(DeltaLocationError) as raised:
        DeltaLocation.from_root(ROOT, environ={})
    for name in ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_TENANT_ID"):
        assert name in str(raised.value)
    with pytest.raises(DeltaLocationError, match="missing AZURE_TENANT_ID") as partial:
        DeltaLocation.from_root(ROOT, environ={"AZURE_CLIENT_ID": "cid",
                                               "AZURE_CLIENT_SECRET": CLIENT_SECRET})
    assert CLIENT_SECRET not in str(partial.value)


def test_directly_configured_location_is_validated():
    with pytest.raises(DeltaLocationError, match="AZURE_STORAGE_ACCOUNT_KEY"):
        DeltaLocation(root_uri=ROOT, storage_options=AzureConfig(account_name="anomalystore")
                      ).storage_options_dict()
    with pytest.raises(DeltaLocationError, match="storage_options are local"):
        DeltaLocation(root_uri=ROOT).storage_options_dict()
    with pytest.raises(DeltaLocationError, match="different storage account"):
        DeltaLocation(root_uri=ROOT, storage_options=AzureConfig(
            account_name="other", account_key=ACCOUNT_KEY)).validate_location()
    with pytest.raises(DeltaLocationError, match="DELTA_ROOT") as raised:
        DeltaLocation(root_uri="abfss://Bad_Container@x.dfs.core.windows.net",
                      storage_options=AzureConfig(account_name="x", account_key=ACCOUNT_KEY)
                      ).storage_options_dict()
    assert ACCOUNT_KEY not in str(raised.value)


def test_unset_credential_variable_fails_at_resource_init(monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_KEY", raising=False)
    location = DeltaLocation(root_uri=ROOT, storage_options=AzureConfig(
        account_name="anomalystore", account_key=dg.EnvVar("AZURE_STORAGE_ACCOUNT_KEY")))
    with pytest.raises(Exception, match="AZURE_STORAGE_ACCOUNT_KEY"):
        with dg.build_resources({"delta": location}):
            pass


# ------------------------------------------------------------------ paths, checked at load


def _a_file(tmp_path: Path) -> Path:
    file = tmp_path / "notes.txt"
    file.write_text("not a directory")
    return file


@pytest.mark.parametrize("make_env, named, advice", [
    (lambda f: {"DATA_DIR": str(f)}, "DATA_DIR", "is a file"),
    (lambda f: {"DATA_DIR": str(f / "data")}, "DATA_DIR", "is under the file"),
    (lambda f: {"DELTA_ROOT": str(f / "delta")}, "DELTA_ROOT", "is under the file"),
    (lambda f: {"TWEET_SOURCE": "replay", "REPLAY_PATH": str(f.parent / "missing.jsonl")},
     "REPLAY_PATH", "does not exist"),
    (lambda f: {"TWEET_SOURCE": "replay", "REPLAY_PATH": str(f.parent)}, "REPLAY_PATH", "is not a file"),
])  # fmt: skip
def test_a_bad_path_fails_at_load_in_one_line_naming_the_variable(tmp_path, make_env, named, advice):
    env = {"DATA_DIR": str(tmp_path / "data"), **make_env(_a_file(tmp_path))}
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    message = str(raised.value)
    assert message.startswith(f"{named}=") and advice in message and "\n" not in message
    assert f"set {named} to" in message or "set it to" in message  # says what to do


def test_paths_that_do_not_exist_yet_are_fine(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path / "a" / "b"),
                                  "DELTA_ROOT": str(tmp_path / "c" / "delta")})
    assert settings.delta_uri == str(tmp_path / "c" / "delta")


@pytest.mark.parametrize("content, problem", [
    (b"", "holds no tweets"),
    (b'{"id": "12", "created_at": "yesterday"}\n', "line 1"),
    (b'\xff\xfe{"id": "12"}\n', "not a readable tweet file"),
])
def test_an_unreadable_replay_file_fails_at_load(tmp_path, content, problem):
    path = tmp_path / "tweets.jsonl"
    path.write_bytes(content)
    with pytest.raises(SettingsError, match="REPLAY_PATH") as raised:
        Settings.from_env({"DATA_DIR": str(tmp_path / "data"), "TWEET_SOURCE": "replay",
                           "REPLAY_PATH": str(path), "PARTITIONS_START": "2026-11-01"})
    assert problem in str(raised.value)


def test_dagster_definitions_validate_refuses_a_bad_path_naming_it(tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "TWEET_SOURCE": "replay",
           "REPLAY_PATH": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate",
         "-m", "anomaly_pipeline.definitions"],
        env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert f"SettingsError: REPLAY_PATH={tmp_path} is not a file: set it to a CSV or JSONL" in output
