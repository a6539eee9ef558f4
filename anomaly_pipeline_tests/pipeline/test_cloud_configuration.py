"""Switching to the cloud is configuration only; wrong configuration fails fast, naming the variable."""

from __future__ import annotations

import dagster as dg
import pytest

from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.definitions import build_definitions, build_resources
from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline.resources.event_hubs import EventHubsStream
from anomaly_pipeline.resources.stream_engine import ExternalStreamEngine
from anomaly_pipeline.resources.x_api import XApiTweetSource
from anomaly_pipeline.settings import Settings
from anomaly_pipeline_tests.conftest import utc

CLOUD = {
    "TWEET_SOURCE": "x_api",
    "EVENT_STREAM": "eventhubs",
    "EVENTHUB_NAME": "tweets",
    "STREAM_ENGINE": "databricks",
    "DATABRICKS_JOB_ID": "12",
    "DELTA_ROOT": "abfss://anomaly@account.dfs.core.windows.net/pipeline",
    "AZURE_STORAGE_ACCOUNT_KEY": "storage-key-that-must-not-leak",
}


def test_cloud_settings_pick_the_cloud_implementations_without_exposing_secrets(tmp_path, monkeypatch):
    for name, value in CLOUD.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env({**CLOUD, "DATA_DIR": str(tmp_path)})
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    sensors = {sensor.name for sensor in defs.get_repository_def().sensor_defs}
    assert "databricks_stream_sensor" in sensors and "stream_sensor" not in sensors

    resources = build_resources(settings)
    assert isinstance(resources["tweet_source"], XApiTweetSource)
    assert isinstance(resources["event_stream"], EventHubsStream)
    assert isinstance(resources["stream_engine"], ExternalStreamEngine)
    assert resources["delta_store"].table_uri("tweets").startswith("abfss://anomaly@")
    assert "storage-key-that-must-not-leak" not in repr(resources)


def test_no_cloud_variables_means_embedded_defaults(tmp_path):
    resources = build_resources(Settings.from_env({"DATA_DIR": str(tmp_path)}))
    kinds = {name: type(resource).__name__ for name, resource in resources.items()}
    assert kinds == {
        "tweet_source": "SyntheticTweetSource",
        "event_stream": "LocalEventLog",
        "pipeline_state": "StateStore",
        "stream_engine": "LocalStreamEngine",
        "delta_store": "DeltaStore",
        "anomaly_detector": "LocalAnomalyDetector",
    }


@pytest.mark.parametrize(
    "env, variable, secret",
    [
        ({"TWEET_SOURCE": "x_api"}, "X_BEARER_TOKEN", None),
        (
            {"EVENT_STREAM": "eventhubs", "EVENTHUB_NAME": "tweets",
             "EVENTHUB_CONNECTION_STRING": "not-a-connection-string-but-secret"},
            "EVENTHUB_CONNECTION_STRING", "not-a-connection-string-but-secret",
        ),
    ],
)  # fmt: skip
def test_a_wrong_or_missing_variable_fails_the_run_fast_naming_it(tmp_path, monkeypatch, env, variable, secret):
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    resources = build_resources(Settings.from_env({**env, "DATA_DIR": str(tmp_path)}))
    with dg.instance_for_test() as instance, pytest.raises(Exception) as failure:
        dg.materialize(
            [raw_tweets], resources=resources, instance=instance,
            partition_key=partition_key(utc(2026, 11, 1)),
        )  # fmt: skip
    chain, error = [], failure.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    text = "\n".join(chain)
    assert variable in text
    if secret:
        assert secret not in text
