"""The detector server against hostile and heavy traffic, on a real server on 127.0.0.1:
numbers beyond the float range, fuzzed bodies, idle and slow clients, a connection cap, and heavy
requests next to light ones."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import select
import signal
import socket
import statistics
import threading
import time
from typing import Any, Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomaly_pipeline.detection.server import BackgroundServer, ServerLimits, answer, create_app
from anomaly_pipeline_tests.detection.contract_cases import hourly_body, sparse_hourly_body

# Fuzzing feeds values that make numpy overflow on purpose; its warnings are expected noise.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

LAST = "/anomalydetector/v1.1/timeseries/last/detect"
PATHS = [
    f"/anomalydetector/{version}/timeseries/{kind}/detect"
    for version in ("v1.0", "v1.1")
    for kind in ("entire", "last", "changepoint")
]
JSON_HEADERS = {"Content-Type": "application/json"}
HUGE = 10**400  # a valid JSON integer far beyond the float range
# Short limits so the slow-client tests take about a second each.
TEST_LIMITS = ServerLimits(idle_timeout=0.5, request_timeout=1.0, max_header_bytes=4096)
HEAD = f"POST {LAST} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def strict_json(text: str) -> Any:
    """json.loads refusing what is not JSON or not finite: NaN, Infinity, -Infinity (which Python's
    json accepts) and numbers like 1e999 that only parse to infinity."""

    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    def finite(token: str) -> float:
        number = float(token)
        if not math.isfinite(number):
            refuse(token)
        return number

    return json.loads(text, parse_constant=refuse, parse_float=finite)


def assert_proper_answer(response: requests.Response) -> None:
    """No 5xx, strict JSON, and the contract's shape."""
    assert response.status_code < 500, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = strict_json(response.text)
    if response.status_code == 200:
        assert isinstance(body, dict) and "period" in body
    else:
        assert set(body) == {"code", "message"}, body


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    """Idle timeout of a minute: a pause between two requests (shrinking, a loaded machine) must
    not race the server closing the keep-alive connection."""
    with BackgroundServer(create_app(api_key=""), limits=ServerLimits(idle_timeout=60)) as running:
        yield running


@pytest.fixture(scope="module")
def session(server) -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


@pytest.fixture(scope="module")
def slow_server() -> Iterator[BackgroundServer]:
    """TEST_LIMITS: short timeouts and a small head limit, for the slow-client tests."""
    with BackgroundServer(create_app(api_key=""), limits=TEST_LIMITS) as running:
        yield running


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log(slow_server) -> Iterator[list[logging.LogRecord]]:
    """Records of uvicorn and of the server module (attached after uvicorn set up its logging)."""
    handler = _Records()
    loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "anomaly_pipeline")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.records
    for logger in loggers:
        logger.removeHandler(handler)


# --------------------------------------------------------------------------------------------
# numbers


OVERFLOW_CASES = [
    # (endpoint kind, field, extra request fields, expected code)
    ("last", "value", {}, "BadArgument"),
    ("last", "sensitivity", {}, "InvalidModelArgument"),
    ("last", "maxAnomalyRatio", {}, "InvalidModelArgument"),
    ("last", "period", {}, "InvalidModelArgument"),
    ("last", "customInterval", {}, "InvalidCustomInterval"),
    ("last", "imputeFixedValue", {"imputeMode": "fixed"}, "InvalidImputeFixedValue"),
    ("changepoint", "stableTrendWindow", {}, "InvalidModelArgument"),
    ("changepoint", "threshold", {}, "InvalidModelArgument"),
]


@pytest.mark.parametrize("sign", [1, -1], ids=["positive", "negative"])
@pytest.mark.parametrize(
    "kind, field, extra, code", OVERFLOW_CASES, ids=[case[1] for case in OVERFLOW_CASES]
)
def test_integer_beyond_float_range_is_400_naming_the_field(
    server, session, kind, field, extra, code, sign
):
    body = hourly_body(72, **extra)
    if field == "value":
        body["series"][5]["value"] = sign * HUGE
    else:
        body[field] = sign * HUGE
    response = session.post(
        f"{server.url}/anomalydetector/v1.1/timeseries/{kind}/detect",
        data=json.dumps(body),
        headers=JSON_HEADERS,
        timeout=10,
    )
    assert response.status_code == 400, response.text[:300]
    error = strict_json(response.text)
    assert error["code"] == code
    assert field in error["message"]
    assert len(error["message"]) < 200  # the 401-digit number is not echoed whole


@pytest.mark.parametrize("path", [path for path in PATHS if "/last/" in path])
def test_values_near_float_max_give_strict_json(server, session, path):
    """The engine overflows on such values: last/detect's margins are null, not Infinity (the
    per-point arrays of entire/changepoint were null already; the fuzz test covers them)."""
    values = [8e307, -8e307, 7.5e307, -1.5e307, 0.0, 1.7e308] * 12
    body = hourly_body(72)
    for point, value in zip(body["series"], values):
        point["value"] = value
    response = session.post(
        server.url + path, data=json.dumps(body), headers=JSON_HEADERS, timeout=10
    )
    assert response.status_code == 200, response.text[:300]
    assert "period" in strict_json(response.text)


# --------------------------------------------------------------------------------------------
# fuzzing

HUGE_NUMBERS = st.sampled_from(
    [HUGE, -HUGE, 2**63, -(2**63) - 1, 2**64, 10**308 * 10, 1.7976931348623157e308, 5e-324, -0.0]
)
NUMBERS = st.integers() | HUGE_NUMBERS | st.floats(allow_nan=True, allow_infinity=True)
SCALARS = (
    st.none()
    | st.booleans()
    | NUMBERS
    | st.text(max_size=20)
    | st.sampled_from(["hourly", "minutely", "none", "fixed", "2026-03-01T00:00:00Z", "", "NaN"])
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "series", "granularity", "customInterval", "period", "sensitivity", "maxAnomalyRatio",
    "imputeMode", "imputeFixedValue", "stableTrendWindow", "threshold",
]
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated_requests(draw) -> tuple[str, str]:
    """A tutorial request with a field or two and a few points replaced: mostly by numbers (huge,
    tiny, non-finite), otherwise by any JSON; few enough changes that validation gets to them."""
    points = draw(st.sampled_from([0, 1, 11, 12, 13, 30, 72]))
    extra = draw(st.sampled_from([{}, {"imputeMode": "fixed", "imputeFixedValue": 0}]))
    body: dict[str, Any] = hourly_body(points, **extra)
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)):
        body[field] = draw(NUMBERS | JUNK)
    series = body.get("series")
    if isinstance(series, list) and series:
        for _ in range(draw(st.integers(0, 2))):
            index = draw(st.integers(0, len(series) - 1))
            target = draw(st.sampled_from(["value", "value", "timestamp", "point"]))
            if target == "point":
                series[index] = draw(JUNK)
            elif isinstance(series[index], dict):
                series[index][target] = draw(NUMBERS | JUNK)
    return draw(st.sampled_from(PATHS)), json.dumps(body)


RAW_BODIES = (
    st.binary(max_size=300)
    | st.builds(
        bytes.__add__,
        st.sampled_from([b'{"series": [', b'{"series": "', b'{"granularity": "\xff', b"[" * 3000]),
        st.binary(max_size=100),
    )
    | st.text(max_size=200).map(lambda text: text.encode("utf-16"))
)
FUZZED_REQUESTS = (
    mutated_requests()
    | st.tuples(st.sampled_from(PATHS), JUNK.map(json.dumps))
    | st.tuples(st.sampled_from(PATHS), RAW_BODIES)
)


@settings(FUZZ_SETTINGS, max_examples=2500)
@given(request=FUZZED_REQUESTS)
def test_fuzzed_requests_never_give_5xx_or_non_json(server, session, request):
    """Near-valid requests with junk fields and points, any JSON document, and raw bytes (not
    UTF-8, cut short, deeply nested): every answer is a 2xx/4xx with strict JSON."""
    path, body = request
    response = session.post(server.url + path, data=body, headers=JSON_HEADERS, timeout=10)
    assert_proper_answer(response)


# --------------------------------------------------------------------------------------------
# slow and idle clients


def _connect(server: BackgroundServer) -> socket.socket:
    conn = socket.create_connection((server.host, server.port), timeout=5)
    return conn


def _read_until_closed(conn: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    conn.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            pytest.fail(f"the server kept the connection open {timeout} s; got {received[:200]!r}")
        if not chunk:
            return received
        received += chunk


def _json_error(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, strict_json(body.decode())


def test_connection_that_sends_nothing_is_closed(slow_server):
    with _connect(slow_server) as conn:
        began = time.monotonic()
        assert _read_until_closed(conn) == b""
    assert time.monotonic() - began >= TEST_LIMITS.idle_timeout * 0.8


def test_half_sent_head_gets_408_and_is_closed(slow_server, server_log):
    with _connect(slow_server) as conn:
        conn.sendall(HEAD.encode())  # no blank line: the head never ends
        status, error = _json_error(_read_until_closed(conn))
    assert status == 408 and error["code"] == "RequestTimeout"
    assert not server_log


def test_half_sent_body_gets_408_and_no_log(slow_server, server_log):
    with _connect(slow_server) as conn:
        conn.sendall(f"{HEAD}Content-Length: 5000\r\n\r\n".encode() + b'{"series": [')
        status, error = _json_error(_read_until_closed(conn))
    assert status == 408 and error["code"] == "RequestTimeout"
    time.sleep(0.2)  # the app sees the disconnect after the close
    assert not server_log, [r.getMessage() for r in server_log]


def test_trickling_client_is_cut_off_at_the_request_deadline(slow_server):
    """A byte every 50 ms keeps the idle timer from firing, not the request deadline."""
    payload = (HEAD + "X-Padding: " + "a" * 1000).encode()
    with _connect(slow_server) as conn:
        began = time.monotonic()
        for byte in payload:
            if select.select([conn], [], [], 0.05)[0]:
                break
            conn.send(bytes([byte]))
        else:
            pytest.fail("the server read a whole request head sent a byte at a time")
        status, error = _json_error(_read_until_closed(conn))
    assert status == 408 and error["code"] == "RequestTimeout"
    assert time.monotonic() - began < TEST_LIMITS.request_timeout + 2


def test_oversized_head_gets_431(slow_server):
    with _connect(slow_server) as conn:
        conn.sendall((HEAD + "X-Padding: ").encode())
        for _ in range(64):  # 1 KiB at a time, until the server answers (never sending after it)
            if select.select([conn], [], [], 0.1)[0]:
                break
            conn.sendall(b"a" * 1024)
        else:
            pytest.fail("the server read a 64 KiB request head")
        status, error = _json_error(_read_until_closed(conn))
    assert status == 431 and error["code"] == "RequestHeaderFieldsTooLarge"


def test_client_hanging_up_mid_upload_logs_nothing(slow_server, server_log):
    for _ in range(3):
        with _connect(slow_server) as conn:
            conn.sendall(f"{HEAD}Content-Length: 5000\r\n\r\n".encode() + b'{"series": [')
            time.sleep(0.05)
    ok = requests.post(slow_server.url + LAST, json=hourly_body(72), timeout=10)  # still serving
    assert ok.status_code == 200
    time.sleep(0.2)
    assert not server_log, [r.getMessage() for r in server_log]


def test_connections_beyond_the_cap_are_refused_until_idle_ones_are_closed():
    limits = ServerLimits(idle_timeout=1.0, request_timeout=2.0, max_connections=4)
    with BackgroundServer(create_app(api_key=""), limits=limits) as capped:
        idle = [_connect(capped) for _ in range(limits.max_connections)]
        try:
            time.sleep(0.1)
            refused = requests.post(capped.url + LAST, json=hourly_body(72), timeout=10)
            assert refused.status_code == 503
            for conn in idle:  # the server closes them after the idle timeout
                _read_until_closed(conn)
            served = requests.post(capped.url + LAST, json=hourly_body(72), timeout=10)
            assert served.status_code == 200
        finally:
            for conn in idle:
                conn.close()


# --------------------------------------------------------------------------------------------
# heavy requests


def _timed_post(http: requests.Session, url: str, data: bytes) -> tuple[float, requests.Response]:
    began = time.perf_counter()
    response = http.post(url, data=data, headers=JSON_HEADERS, timeout=30)
    return time.perf_counter() - began, response


class _HeavyClients:
    """Threads sending a heavy request back to back while ``on`` is set."""

    def __init__(self, url: str, body: bytes, count: int = 4) -> None:
        self.on = threading.Event()
        self.answers: list[requests.Response] = []
        self._url, self._body, self._done = url, body, threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(count)]

    def _run(self) -> None:
        with requests.Session() as http:
            while not self._done.is_set():
                if self.on.wait(0.05):
                    try:
                        self.answers.append(_timed_post(http, self._url, self._body)[1])
                    except requests.Timeout:  # a machine busy with other work; the light requests are what is timed
                        continue

    def __enter__(self) -> "_HeavyClients":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=30)


def _lower_quartile(samples: list[float]) -> float:
    """Robust to the machine's other work, which only ever adds delays."""
    return statistics.quantiles(samples, n=4)[0]


def test_heavy_requests_do_not_hold_up_light_ones(server, session):
    """The issue's case: 1,000 points over 17,280 slots ran on the event loop, so four clients
    sending it made every light request wait. Light latency is measured with and without them,
    alternately, so that a change in the machine's load hits both."""
    url = server.url + LAST
    light = json.dumps(hourly_body(72)).encode()
    heavy = json.dumps(sparse_hourly_body()).encode()
    for _ in range(3):  # warm up both paths
        _timed_post(session, url, heavy)
        _timed_post(session, url, light)
    heavy_alone = min(_timed_post(session, url, heavy)[0] for _ in range(5))
    alone: list[float] = []
    loaded: list[float] = []
    with _HeavyClients(url, heavy) as heavy_clients:
        for _ in range(3):
            alone += [_timed_post(session, url, light)[0] for _ in range(15)]
            heavy_clients.on.set()
            time.sleep(0.2)
            loaded += [_timed_post(session, url, light)[0] for _ in range(15)]
            heavy_clients.on.clear()
            time.sleep(0.2 + 2 * heavy_alone)  # let the heavy requests in flight finish
    light_alone, light_loaded = _lower_quartile(alone), _lower_quartile(loaded)
    assert heavy_alone > 2 * light_alone, "the heavy request is no longer heavy; make it heavier"
    answers = heavy_clients.answers
    assert answers and {r.status_code for r in answers} <= {200, 503}
    expected = strict_json(answer("last", "v1.1", heavy)[1].decode())  # as answered in-process
    assert all(strict_json(r.text) == pytest.approx(expected) for r in answers if r.ok)
    assert light_loaded < 3 * light_alone, (light_alone, light_loaded, heavy_alone)


def test_heavy_requests_beyond_the_queue_get_503_with_retry_after():
    heavy = json.dumps(sparse_hourly_body()).encode()
    with BackgroundServer(create_app(api_key="", heavy_processes=1, heavy_queue=0)) as busy:
        url = busy.url + LAST
        assert requests.post(url, data=heavy, timeout=30).status_code == 200  # worker started
        results: list[requests.Response] = []
        def post() -> None:
            results.append(requests.post(url, data=heavy, timeout=30))

        threads = [threading.Thread(target=post) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    statuses = sorted(r.status_code for r in results)
    assert 200 in statuses and 503 in statuses, statuses
    refused = next(r for r in results if r.status_code == 503)
    assert strict_json(refused.text)["code"] == "ServiceUnavailable"
    assert refused.headers["Retry-After"] == "1"


def test_a_killed_worker_process_gives_503_and_is_replaced():
    heavy = json.dumps(sparse_hourly_body()).encode()
    before = set(multiprocessing.active_children())
    with BackgroundServer(create_app(api_key="")) as running:
        url = running.url + LAST
        assert requests.post(url, data=heavy, timeout=30).status_code == 200
        workers = set(multiprocessing.active_children()) - before
        assert len(workers) == 1, workers
        os.kill(workers.pop().pid, signal.SIGKILL)
        time.sleep(0.5)
        lost = requests.post(url, data=heavy, timeout=30)
        assert lost.status_code == 503 and strict_json(lost.text)["code"] == "ServiceUnavailable"
        assert requests.post(url, data=heavy, timeout=30).status_code == 200
        assert requests.post(url, json=hourly_body(72), timeout=30).status_code == 200
