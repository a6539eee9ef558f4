"""The detector resources: local and REST agree hour for hour; a detector that cannot answer fails
the run; secrets stay out of reprs, logs and events."""

import socket
from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np
import pytest

from anomaly_pipeline.detection.online import COUNTS, REAL
from anomaly_pipeline.detection.server import BackgroundServer, create_app
from anomaly_pipeline.resources.detector import (
    AnomalyDetector,
    AnomalyDetectorFailure,
    LocalAnomalyDetector,
    RestAnomalyDetector,
)

KEY = "resource-test-key-7f3a9c"
START = datetime(2026, 5, 1, tzinfo=timezone.utc)
FIELDS = ("expected", "upper_margin", "lower_margin", "severity")
FLAGS = ("judged", "is_anomaly", "is_positive", "is_negative", "period", "points_used")


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(create_app(api_key=KEY)) as running:
        yield running


def _hours(n=24 * 12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    counts = rng.poisson(40 * (1 + 0.5 * np.sin(2 * np.pi * t / 24))).astype(float)
    if n > 250:
        counts[200] *= 4  # a burst
        counts[250] = 0  # a drop
    likes = np.where(counts > 0, rng.gamma(2.0, 1.5, n), np.nan)  # no average without tweets
    likes[[30, 31, n // 2]] = np.nan
    return [START + timedelta(hours=int(h)) for h in t], counts, likes


@pytest.mark.parametrize("metric, kind", [("counts", COUNTS), ("likes", REAL)])
def test_local_and_rest_give_the_same_verdicts_hour_for_hour(server, metric, kind):
    hours, counts, likes = _hours()
    values = counts if metric == "counts" else likes
    first, history = 150, 120
    local = LocalAnomalyDetector().judge_recent(hours, values, first, history=history, kind=kind)
    rest = RestAnomalyDetector(endpoint=server.url, api_key=KEY).judge_recent(
        hours, values, first, history=history, kind=kind
    )
    for name in FLAGS:
        np.testing.assert_array_equal(getattr(local, name), getattr(rest, name), err_msg=name)
    judged = local.judged
    for name in FIELDS:
        np.testing.assert_allclose(getattr(local, name)[judged], getattr(rest, name)[judged], rtol=1e-9, err_msg=name)
    if metric == "counts":
        assert local.is_positive[200 - first] and local.is_negative[250 - first]


def test_sensitivity_is_passed(server):
    hours, counts, _ = _hours()
    strict = LocalAnomalyDetector(sensitivity=99).judge_recent(hours, counts, 100, history=120, kind=COUNTS)
    lax = LocalAnomalyDetector(sensitivity=10).judge_recent(hours, counts, 100, history=120, kind=COUNTS)
    assert np.all(strict.upper_margin[strict.judged] <= lax.upper_margin[lax.judged])
    rest = RestAnomalyDetector(endpoint=server.url, api_key=KEY, sensitivity=10)
    np.testing.assert_allclose(
        rest.judge_recent(hours, counts, 280, history=120, kind=COUNTS).upper_margin, lax.upper_margin[180:]
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("case", ["unreachable", "wrong key"])
def test_a_detector_that_cannot_answer_raises_instead_of_answering(server, case):
    hours, counts, _ = _hours(n=60)
    endpoint = f"http://127.0.0.1:{_closed_port()}" if case == "unreachable" else server.url
    detector = RestAnomalyDetector(endpoint=endpoint, api_key="not-the-key", max_retries=0, timeout=2)
    with pytest.raises(AnomalyDetectorFailure) as failure:
        detector.judge_recent(hours, counts, 40, history=40, kind=COUNTS)
    assert endpoint in failure.value.description and "not-the-key" not in failure.value.description


def test_mismatched_hours_are_refused():
    hours, counts, _ = _hours(n=60)
    with pytest.raises(ValueError, match="must pair up"):
        LocalAnomalyDetector().judge_recent(hours[:10], counts, 0, history=40, kind=COUNTS)


def test_names_and_interface():
    assert LocalAnomalyDetector().detector_name == "local"
    assert RestAnomalyDetector(endpoint="http://127.0.0.1:1").detector_name == "rest"
    assert issubclass(RestAnomalyDetector, AnomalyDetector)
    assert AnomalyDetector.__doc__ and "sensitivity" in AnomalyDetector.__doc__


def test_secret_stays_out_of_repr_logs_and_events(server, monkeypatch, capsys):
    monkeypatch.setenv("ANOMALY_DETECTOR_KEY", KEY)
    hours, counts, _ = _hours(n=60)

    @dg.asset
    def verdict(context: dg.AssetExecutionContext, detector: AnomalyDetector) -> None:
        result = detector.judge_recent(hours, counts, 50, history=50, kind=COUNTS)
        context.log.info(f"detector {detector!r} said {result}")
        context.add_output_metadata({"detector": repr(detector), "anomalies": int(result.is_anomaly.sum())})

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
