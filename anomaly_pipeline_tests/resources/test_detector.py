"""The detector resources: local and REST agree; secrets stay out of reprs, logs and events."""

import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np
import pytest

from anomaly_pipeline.detection import DetectionError
from anomaly_pipeline.detection.server import BackgroundServer, create_app
from anomaly_pipeline.resources.detector import (
    AnomalyDetector,
    LastPointVerdict,
    LocalAnomalyDetector,
    RestAnomalyDetector,
)

KEY = "resource-test-key-7f3a9c"
START = datetime(2026, 5, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(create_app(api_key=KEY)) as running:
        yield running


def _window(n=96, spike=0.0, missing=()):
    hours = np.arange(n)
    values = 50 + 10 * np.sin(2 * np.pi * hours / 24) + 0.8 * np.sin(hours * 1.3)
    values[-1] += spike
    values[list(missing)] = np.nan
    return [START + timedelta(hours=int(h)) for h in hours], values


@pytest.mark.parametrize(
    "spike, missing",
    [(0.0, ()), (30.0, ()), (-25.0, (5, 6, 40)), (0.0, (0, 1, 50))],
    ids=["normal", "spike", "dip-with-gaps", "leading-gap"],
)
def test_local_and_rest_give_the_same_verdict(server, spike, missing):
    timestamps, values = _window(spike=spike, missing=missing)
    local = LocalAnomalyDetector().detect_last(timestamps, values)
    rest = RestAnomalyDetector(endpoint=server.url, api_key=KEY).detect_last(timestamps, values)
    assert isinstance(local, LastPointVerdict)
    assert local.is_anomaly == rest.is_anomaly == (spike != 0.0)
    assert local.is_positive_anomaly == rest.is_positive_anomaly == (spike > 0)
    assert local.is_negative_anomaly == rest.is_negative_anomaly == (spike < 0)
    assert local.period == rest.period == 24
    assert local.suggested_window == rest.suggested_window == 97
    assert local.value == rest.value == values[-1]
    for field in ("expected_value", "upper_margin", "lower_margin", "severity"):
        assert getattr(local, field) == pytest.approx(getattr(rest, field), rel=1e-9, abs=1e-12)


def test_none_values_are_missing_hours_too(server):
    timestamps, values = _window()
    as_list = [None if i in (7, 30) else float(v) for i, v in enumerate(values)]
    values[[7, 30]] = np.nan
    assert LocalAnomalyDetector().detect_last(timestamps, as_list) == LocalAnomalyDetector().detect_last(
        timestamps, values
    )


def test_model_arguments_are_passed(server):
    timestamps, values = _window(spike=6.0)
    strict = LocalAnomalyDetector(sensitivity=99).detect_last(timestamps, values)
    lax = LocalAnomalyDetector(sensitivity=10).detect_last(timestamps, values)
    assert strict.upper_margin < lax.upper_margin
    rest = RestAnomalyDetector(endpoint=server.url, api_key=KEY, sensitivity=10, period=24)
    assert rest.detect_last(timestamps, values).upper_margin == pytest.approx(lax.upper_margin)


def test_bad_windows_raise_the_contract_codes(server):
    timestamps, values = _window(n=11)
    for detector in (LocalAnomalyDetector(), RestAnomalyDetector(endpoint=server.url, api_key=KEY)):
        with pytest.raises(DetectionError) as info:
            detector.detect_last(timestamps, values)
        assert info.value.code == "InvalidSeries"
    with pytest.raises(DetectionError) as info:
        LocalAnomalyDetector().detect_last(timestamps[:5], values)
    assert info.value.code == "BadArgument"
    with pytest.raises(DetectionError) as info:
        LocalAnomalyDetector(max_anomaly_ratio=0.7).detect_last(*_window())
    assert info.value.code == "InvalidModelArgument"
    with pytest.raises(DetectionError) as info:
        LocalAnomalyDetector().detect_last(*_window(), granularity="fortnightly")
    assert info.value.code == "InvalidGranularity"


def test_names_and_interface():
    assert LocalAnomalyDetector().detector_name == "local"
    assert RestAnomalyDetector(endpoint="http://127.0.0.1:1").detector_name == "rest"
    assert issubclass(RestAnomalyDetector, AnomalyDetector)
    assert AnomalyDetector.__doc__ and "sensitivity" in AnomalyDetector.__doc__


def test_local_is_fast_enough_for_backfills():
    timestamps, values = _window(n=97)
    detector = LocalAnomalyDetector()
    detector.detect_last(timestamps, values)
    started = time.perf_counter()
    for _ in range(200):
        detector.detect_last(timestamps, values)
    per_call = (time.perf_counter() - started) / 200
    assert per_call < 0.01  # 17,500 calls of a backfill stay under three minutes


def test_secret_stays_out_of_repr_logs_and_events(server, monkeypatch, capsys):
    monkeypatch.setenv("ANOMALY_DETECTOR_KEY", KEY)
    timestamps, values = _window()

    @dg.asset
    def verdict(context: dg.AssetExecutionContext, detector: AnomalyDetector) -> None:
        result = detector.detect_last(timestamps, values)
        context.log.info(f"detector {detector!r} said {result}")
        context.add_output_metadata({"detector": repr(detector), "anomaly": result.is_anomaly})

    resource = RestAnomalyDetector(endpoint=server.url, api_key=dg.EnvVar("ANOMALY_DETECTOR_KEY"))
    result = dg.materialize([verdict], resources={"detector": resource})
    assert result.success
    events = "\n".join(repr(event) for event in result.all_events)
    assert "***" in events and KEY not in events
    captured = capsys.readouterr()
    assert KEY not in captured.out and KEY not in captured.err
    direct = RestAnomalyDetector(endpoint=server.url, api_key=KEY)
    assert KEY not in repr(direct) and KEY not in str(direct)
    assert KEY not in repr(direct.client)
