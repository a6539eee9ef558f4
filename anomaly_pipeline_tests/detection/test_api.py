"""The JSON API in-process: reference vectors, v1.0/v1.1 shapes, missing points, every error row."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from anomaly_pipeline.detection import (
    DetectionError,
    detect_change_points,
    detect_entire,
    detect_last,
    infer_granularity,
    parse_request,
)
from anomaly_pipeline.detection.request import add_months
from anomaly_pipeline_tests.detection.contract_cases import (
    ERROR_CASES,
    error_case_ids,
    fresh,
    hourly_body,
    load_vector,
)


def _close(actual, expected, rel=0.02):
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    return np.all(np.abs(actual - expected) <= rel * np.abs(expected))


def test_entire_reference_vector():
    vector = load_vector("entire")
    response = detect_entire(vector["request"])
    documented = vector["response"]
    assert response["period"] == 12
    assert [i for i, flag in enumerate(response["isAnomaly"]) if flag] == [25]
    assert response["isPositiveAnomaly"][25] and not response["isNegativeAnomaly"][25]
    assert _close(response["expectedValues"], documented["expectedValues"])
    assert set(response) == set(documented)
    assert all(len(response[k]) == 48 for k in response if k != "period")
    assert response["severity"][25] > 0 and max(response["severity"][:25]) == 0


def test_last_reference_vector():
    vector = load_vector("last")
    response = detect_last(vector["request"])
    documented = vector["response"]
    assert response["isAnomaly"] is False
    assert response["period"] == 12
    assert response["suggestedWindow"] == 49
    assert _close(response["expectedValue"], documented["expectedValue"])
    assert set(response) == set(documented)


def test_v1_0_has_no_severity_and_v1_1_does():
    body = load_vector("last")["request"]
    assert "severity" not in detect_last(body, version="v1.0")
    assert "severity" in detect_last(body, version="v1.1")
    assert "severity" not in detect_entire(body, version="v1.0")


def test_flags_are_the_margin_rule():
    response = detect_entire(load_vector("entire")["request"])
    values = [p["value"] for p in load_vector("entire")["request"]["series"]]
    for v, e, up, lo, flag in zip(
        values,
        response["expectedValues"],
        response["upperMargins"],
        response["lowerMargins"],
        response["isAnomaly"],
    ):
        assert flag == (not e - lo <= v <= e + up)


def test_granularity_none_allows_timestamps_to_be_left_out():
    body = fresh(load_vector("entire")["request"])
    body["granularity"] = "none"
    for point in body["series"]:
        del point["timestamp"]
    response = detect_entire(body)
    assert response["isAnomaly"][25] and sum(response["isAnomaly"]) == 1


def test_v1_1_defaults_granularity_to_none():
    body = fresh(load_vector("entire")["request"])
    del body["granularity"]
    assert parse_request(body).granularity == "none"


def test_missing_points_are_imputed_and_answered_point_for_point():
    body = fresh(load_vector("entire")["request"])
    del body["series"][30]  # one of 48 months missing (2%)
    request = parse_request(body)
    assert len(request.values) == 48 and request.positions[30] == 31
    response = detect_entire(body)
    assert len(response["isAnomaly"]) == 47
    assert [i for i, flag in enumerate(response["isAnomaly"]) if flag] == [25]


@pytest.mark.parametrize(
    "mode, expected",
    [("previous", 10.0), ("linear", 15.0), ("auto", 15.0), ("zero", 0.0), ("fixed", 7.0)],
)
def test_impute_modes(mode, expected):
    body = hourly_body(30, imputeMode=mode, imputeFixedValue=7)
    body["series"][4]["value"], body["series"][6]["value"] = 10.0, 20.0
    del body["series"][5]
    assert parse_request(body).values[5] == pytest.approx(expected)


def test_not_fill_leaves_the_gap_to_the_engine():
    body = hourly_body(30, imputeMode="notFill")
    del body["series"][5]
    request = parse_request(body)
    assert np.isnan(request.values[5]) and len(request.values) == 30
    assert len(detect_entire(body)["isAnomaly"]) == 29


def test_monthly_grid_uses_calendar_arithmetic():
    assert add_months(datetime(2024, 1, 31, tzinfo=timezone.utc), 1).day == 29
    body = fresh(load_vector("entire")["request"])
    body["series"] = body["series"][::3]  # quarterly points, monthly + customInterval 3
    body["customInterval"] = 3
    body["period"] = 4
    assert len(parse_request(body).values) == 16


def test_custom_interval_grid():
    body = hourly_body(24, granularity="minutely", customInterval=60)
    assert len(parse_request(body).values) == 24
    body["customInterval"] = 7
    with pytest.raises(DetectionError) as info:
        parse_request(body)
    assert info.value.code == "InvalidSeries"


def test_infer_granularity():
    start = datetime(2014, 4, 1, tzinfo=timezone.utc)
    five_min = [start + timedelta(minutes=5 * i) for i in range(20)]
    assert infer_granularity(five_min) == ("minutely", 5)
    assert infer_granularity(five_min[:10] + five_min[12:]) == ("minutely", 5)
    months = [add_months(start, i) for i in range(20)]
    assert infer_granularity(months) == ("monthly", 1)
    assert infer_granularity([add_months(start, 12 * i) for i in range(20)]) == ("yearly", 1)
    assert infer_granularity([start + timedelta(days=7 * i) for i in range(20)]) == ("weekly", 1)


def test_change_points_shape():
    values = [10 + np.sin(i) + (20 if i >= 40 else 0) for i in range(80)]
    body = {"series": [{"value": v} for v in values], "granularity": "none"}
    response = detect_change_points(body)
    assert set(response) == {"period", "isChangePoint", "confidenceScores"}
    assert len(response["isChangePoint"]) == 80
    assert any(response["isChangePoint"][35:45])
    with pytest.raises(DetectionError) as info:
        detect_change_points({**body, "threshold": 1.5})
    assert info.value.code == "InvalidModelArgument"


def test_last_detect_is_the_online_detectors_verdict_on_the_last_point():
    from anomaly_pipeline.detection import online

    body = hourly_body(200)
    body["series"][-1]["value"] *= 3  # a spike on the judged hour
    values = np.array([p["value"] for p in body["series"]])
    response = detect_last(body)
    settings = online.DEFAULT_SETTINGS.for_step(3600)
    expected = online.detect(values, settings=settings)
    assert response["isAnomaly"] is True and response["isPositiveAnomaly"] is True
    assert response["expectedValue"] == pytest.approx(expected.expected[-1])
    assert response["upperMargin"] == pytest.approx(expected.upper_margin[-1])
    assert response["period"] == 24 and response["suggestedWindow"] == 4 * 24 + 1


@pytest.mark.parametrize("case_id, version, body, code", ERROR_CASES, ids=error_case_ids())
def test_every_error_row_gives_its_code(case_id, version, body, code):
    for endpoint in (detect_entire, detect_last):
        with pytest.raises(DetectionError) as info:
            endpoint(fresh(body), version=version)
        assert info.value.code == code, info.value.message
        assert info.value.to_dict() == {"code": code, "message": info.value.message}


def test_missing_under_ten_percent_is_accepted():
    body = hourly_body(96)
    body["series"] = [p for i, p in enumerate(body["series"]) if i % 12 != 5]  # 8% missing
    response = detect_entire(body)
    assert response["period"] == 24 and not any(response["isAnomaly"])


def test_stream_table_models_the_calendar_cycle_of_its_granularity():
    from anomaly_pipeline.detection.api import detect_table
    from anomaly_pipeline.detection.engine import detect_stream_values

    rng = np.random.default_rng(0)
    t = np.arange(24 * 5)
    values = rng.poisson(30 * (1 + 0.5 * np.sin(2 * np.pi * t / 24))).astype(float)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    stamps = [start + timedelta(hours=int(i)) for i in t]
    table = detect_table(stamps, values.tolist(), mode="stream", granularity="hourly")
    by_day = detect_stream_values(values, natural_periods=(24, 168))
    by_acf = detect_stream_values(values)
    assert (by_day.period, by_acf.period) == (24, 0)
    table_expected = np.array(table["expected_value"], dtype=float)  # None (not judged yet) -> NaN
    np.testing.assert_allclose(table_expected, by_day.expected_values)
    assert not np.allclose(table_expected, by_acf.expected_values, equal_nan=True)
