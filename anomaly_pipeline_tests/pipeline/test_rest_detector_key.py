"""`DETECTOR=rest` takes `ANOMALY_DETECTOR_KEY` as optional: a keyless endpoint works without it, and
a key, when set, is sent (resolved from `EnvVar` at run time)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np
import pytest

from anomaly_pipeline.definitions import build_resources
from anomaly_pipeline.detection.online import COUNTS
from anomaly_pipeline.detection.server import BackgroundServer, create_app
from anomaly_pipeline.resources.detector import AnomalyDetector
from anomaly_pipeline.settings import Settings

KEY = "rest-key-test-5b1e"
HOURS = [datetime(2026, 5, 1, tzinfo=timezone.utc) + timedelta(hours=h) for h in range(60)]
COUNTS_PER_HOUR = np.random.default_rng(3).poisson(30, len(HOURS)).astype(float)


@dg.asset
def judged_hours(detector: AnomalyDetector) -> dg.MaterializeResult:
    verdicts = detector.judge_recent(HOURS, COUNTS_PER_HOUR, 50, history=50, kind=COUNTS)
    return dg.MaterializeResult(metadata={"judged": int(verdicts.judged.sum())})


def _materialize_with_rest_detector(url: str, data_dir, env: dict[str, str]) -> dg.ExecuteInProcessResult:
    settings = Settings.from_env({"DETECTOR": "rest", "DETECTOR_ENDPOINT": url, "DATA_DIR": str(data_dir), **env})
    detector = build_resources(settings)["anomaly_detector"]
    return dg.materialize([judged_hours], resources={"detector": detector})


def test_rest_detector_without_a_key_judges_against_a_keyless_endpoint(monkeypatch, tmp_path):
    monkeypatch.delenv("ANOMALY_DETECTOR_KEY", raising=False)
    with BackgroundServer(create_app(api_key="")) as server:  # "" : the server asks for no key
        result = _materialize_with_rest_detector(server.url, tmp_path, {})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("judged_hours")
    assert materialization.metadata["judged"].value == 10


def test_rest_detector_sends_the_key_when_it_is_set(monkeypatch, tmp_path):
    monkeypatch.setenv("ANOMALY_DETECTOR_KEY", KEY)
    with BackgroundServer(create_app(api_key=KEY)) as server:  # refuses requests without the key
        result = _materialize_with_rest_detector(server.url, tmp_path, {"ANOMALY_DETECTOR_KEY": KEY})
    assert result.success
    assert KEY not in "\n".join(repr(event) for event in result.all_events)


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_key_counts_as_unset(value):
    settings = Settings.from_env({"DETECTOR": "rest", "DETECTOR_ENDPOINT": "http://127.0.0.1:1", "ANOMALY_DETECTOR_KEY": value})
    assert settings.detector_key_set is False
