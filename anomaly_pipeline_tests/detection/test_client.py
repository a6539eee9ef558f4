"""The REST client: against the real server, and its retries against a tiny flaky server."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from anomaly_pipeline.detection import DetectionError
from anomaly_pipeline.detection.client import AnomalyDetectorClient
from anomaly_pipeline_tests.detection.conftest import TEST_KEY
from anomaly_pipeline_tests.detection.contract_cases import hourly_body, load_vector

OK_BODY = {"period": 0, "suggestedWindow": 29, "expectedValue": 1.0, "upperMargin": 0.1,
           "lowerMargin": 0.1, "isAnomaly": False, "isPositiveAnomaly": False,
           "isNegativeAnomaly": False, "severity": 0.0}


class FlakyServer:
    """Answers the scripted (status, headers) first, then 200 OK_BODY; records request headers."""

    def __init__(self, script):
        self.script = list(script)
        self.seen_headers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.seen_headers.append(dict(self.headers))
                status, headers = outer.script.pop(0) if outer.script else (200, {})
                body = json.dumps(OK_BODY if status == 200 else {"code": "x", "message": "y"})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _client(url, sleeps, **kwargs):
    return AnomalyDetectorClient(url, key=TEST_KEY, sleep=sleeps.append, **kwargs)


def test_client_against_the_real_server(detector_server):
    with AnomalyDetectorClient(detector_server.url, key=TEST_KEY) as client:
        last = client.detect_last(load_vector("last")["request"])
        assert last["period"] == 12 and last["suggestedWindow"] == 49 and "severity" in last
        entire = client.detect_entire(load_vector("entire")["request"], api_version="v1.0")
        assert entire["isAnomaly"][25] and "severity" not in entire
        points = client.detect_change_points(hourly_body(72))
        assert len(points["isChangePoint"]) == 72


def test_400_raises_detection_error_with_the_code(detector_server):
    client = AnomalyDetectorClient(detector_server.url, key=TEST_KEY)
    with pytest.raises(DetectionError) as info:
        client.detect_last(hourly_body(11))
    assert info.value.code == "InvalidSeries" and info.value.status == 400


def test_wrong_key_raises_unauthorized_without_the_key(detector_server):
    client = AnomalyDetectorClient(detector_server.url, key="not-the-key-xyz")
    with pytest.raises(DetectionError) as info:
        client.detect_last(hourly_body(72))
    assert info.value.code == "Unauthorized"
    assert "not-the-key-xyz" not in str(info.value) and "not-the-key-xyz" not in repr(info.value)


def test_retries_429_honouring_retry_after_then_503():
    sleeps: list[float] = []
    with FlakyServer([(429, {"Retry-After": "2"}), (503, {})]) as server:
        result = _client(server.url, sleeps, max_retries=3, backoff=0.01).detect_last(hourly_body(12))
    assert result == OK_BODY
    assert len(server.seen_headers) == 3
    assert sleeps[0] >= 2.0  # Retry-After wins over the short backoff
    assert 0 < sleeps[1] <= 0.02  # then exponential backoff (0.01 * 2, with jitter)
    assert all(h.get("Ocp-Apim-Subscription-Key") == TEST_KEY for h in server.seen_headers)


def test_backoff_doubles_and_gives_up():
    sleeps: list[float] = []
    with FlakyServer([(500, {})] * 10) as server:
        client = _client(server.url, sleeps, max_retries=3, backoff=1.0)
        with pytest.raises(DetectionError) as info:
            client.detect_entire(hourly_body(12))
    assert info.value.code == "RequestFailed"
    assert len(server.seen_headers) == 4 and len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        assert 0.5 * 2**attempt <= delay <= 2**attempt


def test_connection_errors_are_retried():
    from anomaly_pipeline.detection.server import free_port

    sleeps: list[float] = []
    client = _client(f"http://127.0.0.1:{free_port()}", sleeps, max_retries=2, backoff=0.01)
    with pytest.raises(DetectionError) as info:
        client.detect_last(hourly_body(12))
    assert info.value.code == "RequestFailed" and len(sleeps) == 2
    assert TEST_KEY not in str(info.value)


def test_timeouts_are_retried():
    sleeps: list[float] = []
    blocker = threading.Event()
    with FlakyServer([]) as server:
        server.httpd.RequestHandlerClass.do_POST = lambda self: blocker.wait(2)
        client = _client(server.url, sleeps, max_retries=1, backoff=0.01, timeout=0.2)
        with pytest.raises(DetectionError) as info:
            client.detect_last(hourly_body(12))
        blocker.set()
    assert info.value.code == "RequestFailed" and "Timeout" in info.value.message
    assert len(sleeps) == 1


def test_key_absent_from_repr_and_logs(caplog):
    caplog.set_level(logging.DEBUG)
    sleeps: list[float] = []
    with FlakyServer([(503, {})]) as server:
        client = _client(server.url, sleeps, backoff=0.01)
        client.detect_last(hourly_body(12))
    assert TEST_KEY not in repr(client) and TEST_KEY not in str(client)
    assert "***" in repr(client)
    assert "retrying" in caplog.text
    assert TEST_KEY not in caplog.text
