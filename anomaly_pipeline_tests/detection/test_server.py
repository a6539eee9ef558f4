"""The HTTP server, called the way the tutorial called the Azure service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from anomaly_pipeline.detection.server import (
    UNAUTHORIZED_BODY,
    BackgroundServer,
    create_app,
    free_port,
)
from anomaly_pipeline_tests.detection.conftest import SMALL_BODY_LIMIT, TEST_KEY
from anomaly_pipeline_tests.detection.contract_cases import (
    ERROR_CASES,
    error_case_ids,
    hourly_body,
    load_vector,
)

LAST = "/anomalydetector/v1.0/timeseries/last/detect"
HEADERS = {"Ocp-Apim-Subscription-Key": TEST_KEY, "Content-Type": "application/json"}


def _post(server, path, body, headers=HEADERS, **kwargs):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.url + path, headers=headers, data=data, timeout=10, **kwargs)


def test_tutorial_request_shape(detector_server):
    response = _post(detector_server, LAST, hourly_body(72))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    result = response.json()
    assert result["period"] == 24
    assert result["isAnomaly"] is False
    assert result["suggestedWindow"] == 97
    assert set(result) >= {"expectedValue", "upperMargin", "lowerMargin", "isPositiveAnomaly"}
    assert "severity" not in result  # v1.0


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
@pytest.mark.parametrize("kind", ["entire", "last", "changepoint"])
def test_all_endpoints_answer(detector_server, version, kind):
    response = _post(
        detector_server, f"/anomalydetector/{version}/timeseries/{kind}/detect", hourly_body(72)
    )
    assert response.status_code == 200, response.text
    assert ("severity" in response.json()) == (version == "v1.1" and kind != "changepoint")


def test_reference_vector_over_http(detector_server):
    vector = load_vector("entire")
    result = _post(
        detector_server, "/anomalydetector/v1.1/timeseries/entire/detect", vector["request"]
    ).json()
    assert [i for i, flag in enumerate(result["isAnomaly"]) if flag] == [25]
    assert set(result) == set(vector["response"])


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"Ocp-Apim-Subscription-Key": "wrong", "Content-Type": "application/json"},
        {"Ocp-Apim-Subscription-Key": TEST_KEY[:-1], "Content-Type": "application/json"},
    ],
    ids=["missing-key", "wrong-key", "prefix-of-key"],
)
def test_key_required(detector_server, headers):
    response = _post(detector_server, LAST, hourly_body(72), headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED_BODY
    assert TEST_KEY not in response.text


def test_no_key_configured_means_open(open_detector_server):
    response = _post(open_detector_server, LAST, hourly_body(72), headers={})
    assert response.status_code == 200


def test_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ANOMALY_DETECTOR_KEY", "from-env")
    with BackgroundServer(create_app()) as server:
        body = hourly_body(72)
        assert _post(server, LAST, body, headers={}).status_code == 401
        ok = _post(server, LAST, body, headers={"Ocp-Apim-Subscription-Key": "from-env"})
        assert ok.status_code == 200


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b"\xff\xfe\x00", b"[" * 50_000, b'{"series": [1, 2,]}'],
    ids=["empty", "truncated", "text", "binary", "deeply-nested", "trailing-comma"],
)
def test_malformed_json_is_400(detector_server, raw):
    response = _post(detector_server, LAST, raw)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidJsonFormat"


def test_oversized_body_is_413_with_json(detector_server):
    big = json.dumps(hourly_body(72)).encode() + b" " * SMALL_BODY_LIMIT
    response = _post(detector_server, LAST, big)
    assert response.status_code == 413
    assert response.json()["code"] == "RequestEntityTooLarge"


def test_oversized_chunked_body_is_413(detector_server):
    def chunks():
        for _ in range(SMALL_BODY_LIMIT // 1024 + 2):
            yield b" " * 1024

    response = requests.post(detector_server.url + LAST, headers=HEADERS, data=chunks(), timeout=10)
    assert response.status_code == 413
    assert response.json()["code"] == "RequestEntityTooLarge"


def test_unknown_paths_and_methods_are_json(detector_server):
    missing = _post(detector_server, "/anomalydetector/v2.0/timeseries/last/detect", {})
    assert missing.status_code == 404 and "code" in missing.json()
    wrong_method = requests.get(detector_server.url + LAST, headers=HEADERS, timeout=10)
    assert wrong_method.status_code == 405 and "code" in wrong_method.json()


@pytest.mark.parametrize("case_id, version, body, code", ERROR_CASES, ids=error_case_ids())
def test_every_error_row_is_400_with_its_code(open_detector_server, case_id, version, body, code):
    for kind in ("entire", "last"):
        response = _post(
            open_detector_server, f"/anomalydetector/{version}/timeseries/{kind}/detect", body, headers={}
        )
        assert response.status_code == 400, response.text
        assert response.json()["code"] == code
        assert set(response.json()) == {"code", "message"}


@pytest.mark.parametrize(
    "body",
    [None, 0, "text", {"series": None}, {"series": [None] * 20}, {"series": [[1, 2]] * 20},
     {"series": [{"value": {"x": 1}}] * 20, "granularity": "none"},
     {"series": [{"timestamp": 5, "value": 1}] * 20, "granularity": "hourly"},
     {**hourly_body(72), "granularity": 5}, {**hourly_body(72), "period": "24"},
     {**hourly_body(72), "sensitivity": None}, {**hourly_body(72), "customInterval": 1e300},
     {"series": [{"timestamp": "2026-01-01T00:00:00Z", "value": 1e308 * 10}] * 20},
     {"series": [{"timestamp": "0001-01-01T00:00:00+05:00", "value": 1}] * 20, "granularity": "daily"}],
)
def test_odd_input_never_gives_500(open_detector_server, body):
    response = _post(open_detector_server, LAST, body, headers={})
    assert response.status_code == 400, response.text
    assert "code" in response.json()


def test_serve_detector_command_requires_the_env_key_and_never_prints_it(tmp_path):
    port = free_port()
    env = {**os.environ, "ANOMALY_DETECTOR_KEY": "cli-secret-4242"}
    server = subprocess.Popen(
        [sys.executable, "-m", "anomaly_pipeline.cli", "serve-detector", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}{LAST}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                denied = requests.post(url, json=hourly_body(72), timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        assert denied.status_code == 401
        ok = requests.post(
            url, json=hourly_body(72), headers={"Ocp-Apim-Subscription-Key": "cli-secret-4242"}, timeout=5
        )
        assert ok.status_code == 200 and ok.json()["period"] == 24
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert "key required" in err
    assert "cli-secret-4242" not in out + err
