"""HTTP server for the Anomaly Detector REST contract (Starlette app served by uvicorn).

Endpoints (POST, JSON): ``/anomalydetector/{v1.0,v1.1}/timeseries/{entire,last,changepoint}/detect``.

- Invalid requests: HTTP 400 ``{"code": ..., "message": ...}`` with the contract's codes; a body
  that is not JSON gives ``InvalidJsonFormat``; a body over ``max_body_bytes`` gives 413 with a
  JSON body; unknown paths 404 and other methods 405, both JSON. Bad input never gives a 500.
- Every answer is strict JSON: a number the engine could not compute finitely (e.g. the margins
  of values near 1e308) is sent as ``null``, as the per-point arrays of entire/changepoint
  already were.
- When a key is configured (argument ``api_key`` or environment variable
  ``ANOMALY_DETECTOR_KEY``) the header ``Ocp-Apim-Subscription-Key`` must carry it; otherwise 401
  with the original service's body ``{"error": {"code": "401", "message": ...}}``. The key is
  compared in constant time and never logged or echoed.
- CPU: a request whose series spans at most ``inline_max_slots`` grid slots is answered on the
  event loop (a millisecond or two). Larger ones go to the :class:`HeavyLane`, worker processes at
  a lower CPU priority: they use the CPU the small requests leave, and cannot hold those up. At
  most ``heavy_queue`` of them wait per server process; more get 503 ``ServiceUnavailable`` with
  ``Retry-After``. For throughput use several server processes (``serve(workers=N)``).
- Connections (:class:`ServerLimits`, per server process): a connection silent for
  ``idle_timeout`` seconds, before or between requests, is closed; a request not received in full
  within ``request_timeout`` seconds of its first byte gets 408 and the connection is closed; a
  request head over ``max_header_bytes`` gets 431; past ``max_connections`` connections uvicorn
  answers 503 (plain text) and closes. A client hanging up mid-upload is dropped without a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Optional, Union

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from threadpoolctl import threadpool_limits
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from anomaly_pipeline.detection.api import ENDPOINTS
from anomaly_pipeline.detection.errors import INVALID_JSON_FORMAT, DetectionError
from anomaly_pipeline.detection.request import (
    CALENDAR_MONTHS,
    FIXED_STEPS,
    VERSIONS,
    parse_custom_interval,
    parse_granularity,
    parse_timestamp,
)

KEY_ENV_VAR = "ANOMALY_DETECTOR_KEY"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024  # 8640 points take about 0.5 MB
# Series spanning more grid slots than this (about 2 ms of work) go to the heavy lane, and so do
# bodies larger than INLINE_MAX_BODY_BYTES (parsing them is work too).
INLINE_MAX_SLOTS = 1000
INLINE_MAX_BODY_BYTES = 64 * 1024
HEAVY_PROCESSES = 1  # per server process
HEAVY_QUEUE = 8  # heavy requests waiting for a worker process, per server process
# added to the workers' nice value: about a tenth of a core's share against a normal-priority
# process, so small requests go first, yet a heavy one still finishes on a machine busy with other
# work (at 19, 1.5%, a 0.5 s request took 38 s beside two busy processes and clients timed out)
HEAVY_NICENESS = 10
BUSY_RETRY_AFTER_SECONDS = 1
UNAUTHORIZED_BODY = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
        "to provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource.",
    }
}

logger = logging.getLogger(__name__)

Answer = tuple[int, bytes]  # HTTP status and JSON body


@dataclass(frozen=True)
class ServerLimits:
    """Connection limits of one server process (seconds, bytes, connections)."""

    idle_timeout: float = 5.0
    request_timeout: float = 15.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 256


# --------------------------------------------------------------------------------------------
# answers


def encode(body: Any) -> bytes:
    """Strict JSON: NaN and infinities become null (orjson's rule), never ``NaN``/``Infinity``."""
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(body: Any, status: int = 200, headers: Optional[dict[str, str]] = None) -> Response:
    return Response(encode(body), status, headers, media_type="application/json")


def _error(
    code: str, message: str, status: int = 400, headers: Optional[dict[str, str]] = None
) -> Response:
    return _json({"code": code, "message": message}, status, headers)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DetectionError(INVALID_JSON_FORMAT, "the request body is not valid JSON.") from None


def answer(kind: str, version: str, body: Union[bytes, Any]) -> Answer:
    """The answer to one request: ``body`` is the raw bytes or the parsed JSON (never bytes).

    Runs on the event loop or in a heavy-lane worker process; a refused request is the contract's
    error, anything else raised is a bug and propagates.
    """
    try:
        parsed = _parse_json(body) if isinstance(body, bytes) else body
        result = ENDPOINTS[kind](parsed, version=version)
    except DetectionError as exc:
        return exc.status, encode(exc.to_dict())
    return 200, encode(result)


def grid_slots(body: Any) -> int:
    """How many grid slots the engine analyses for this body, at most (routing only: validation
    happens in :func:`answer`; a body it will refuse counts as its number of points)."""
    series = body.get("series") if isinstance(body, dict) else None
    if not isinstance(series, list) or not series:
        return 0
    try:
        granularity = parse_granularity(body.get("granularity"), required=False)
        if granularity == "none":
            return len(series)
        interval = parse_custom_interval(body.get("customInterval"))
        first, last = (parse_timestamp(series[i]["timestamp"]) for i in (0, -1))
        if granularity in CALENDAR_MONTHS:
            months = (last.year - first.year) * 12 + last.month - first.month
            span = months // (CALENDAR_MONTHS[granularity] * interval)
        else:
            span = (last - first) // (FIXED_STEPS[granularity] * interval)
    except (DetectionError, KeyError, TypeError, OverflowError):
        return len(series)
    return max(len(series), span + 1)


# --------------------------------------------------------------------------------------------
# heavy lane


class ServerBusy(Exception):
    """The heavy lane is full (or lost a worker): the client should retry shortly."""


def _start_heavy_worker() -> None:
    """Heavy-lane worker start-up: a low CPU priority, so the scheduler runs small requests
    first, and one BLAS thread (the helper threads numpy and scipy started on import would keep
    the normal priority, and spin). Ctrl-C is for the server, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(HEAVY_NICENESS)
    threadpool_limits(limits=1)


class HeavyLane:
    """Large requests answered in worker processes at lower CPU priority, with a bounded queue.

    The pool starts with the app's lifespan (or on the first heavy request) and stops with it. A
    worker that dies (killed, out of memory) fails the requests it held with :class:`ServerBusy`
    and the pool is replaced.
    """

    def __init__(self, processes: int = HEAVY_PROCESSES, queue: int = HEAVY_QUEUE) -> None:
        self._processes = processes
        self._capacity = processes + queue
        self._pending = 0
        self._pool: Optional[ProcessPoolExecutor] = None

    def start(self) -> None:
        self._pool = ProcessPoolExecutor(
            self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_heavy_worker,
        )
        self._pool.submit(os.getpid)  # spawn a worker now rather than on the first heavy request

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def answer(self, kind: str, version: str, raw: bytes) -> Answer:
        if self._pool is None:
            self.start()
        if self._pending >= self._capacity:
            raise ServerBusy
        pool = self._pool
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, answer, kind, version, raw)
        except BrokenProcessPool:
            if self._pool is pool:
                logger.error("a detection worker process died; starting a new pool")
                pool.shutdown(wait=False, cancel_futures=True)
                self.start()
            raise ServerBusy from None
        finally:
            self._pending -= 1


# --------------------------------------------------------------------------------------------
# app


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    api_key: Optional[str] = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    inline_max_slots: int = INLINE_MAX_SLOTS,
    heavy_processes: int = HEAVY_PROCESSES,
    heavy_queue: int = HEAVY_QUEUE,
) -> Starlette:
    """The ASGI app. ``api_key=None`` reads ``ANOMALY_DETECTOR_KEY`` (unset or empty: no key)."""
    key = api_key if api_key is not None else os.environ.get(KEY_ENV_VAR, "")
    expected_key = key.encode() if key else None
    heavy_lane = HeavyLane(heavy_processes, heavy_queue)

    def authorized(request: Request) -> bool:
        if expected_key is None:
            return True
        given = request.headers.get(KEY_HEADER, "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, expected_key)

    async def respond(kind: str, version: str, raw: bytes) -> Answer:
        """Small requests on the loop, large ones in the heavy lane."""
        if len(raw) <= INLINE_MAX_BODY_BYTES:
            try:
                body = _parse_json(raw)
            except DetectionError as exc:
                return exc.status, encode(exc.to_dict())
            if grid_slots(body) <= inline_max_slots:
                return answer(kind, version, body)
        return await heavy_lane.answer(kind, version, raw)

    async def detect(request: Request) -> Response:
        version = request.path_params["version"]
        kind = request.path_params["kind"]
        if version not in VERSIONS or kind not in ENDPOINTS:
            return _error("NotFound", "Resource not found.", 404)
        if not authorized(request):
            return _json(UNAUTHORIZED_BODY, 401)
        try:
            raw = await _read_body(request, max_body_bytes)
            status, payload = await respond(kind, version, raw)
        except ClientDisconnect:  # hung up or timed out mid-upload: uvicorn drops this answer
            return Response(status_code=400)
        except _BodyTooLarge:
            return _error(
                "RequestEntityTooLarge",
                f"the request body is larger than {max_body_bytes} bytes.",
                413,
                {"Connection": "close"},  # rather than read the rest of it
            )
        except ServerBusy:
            return _error(
                "ServiceUnavailable",
                f"the detector is busy with large requests; retry in {BUSY_RETRY_AFTER_SECONDS} s.",
                503,
                {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
            )
        except Exception:  # a bug, not bad input: log without the body, answer without details
            logger.exception("detection failed on %s", request.url.path)
            return _error("InternalServerError", "the detector failed on this request.", 500)
        return Response(payload, status_code=status, media_type="application/json")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        codes = {404: "NotFound", 405: "MethodNotAllowed"}
        return _error(codes.get(exc.status_code, "HttpError"), str(exc.detail), exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        heavy_lane.start()
        try:
            yield
        finally:
            heavy_lane.stop()

    routes = [
        Route(
            "/anomalydetector/{version}/timeseries/{kind}/detect",
            detect,
            methods=["POST"],
        )
    ]
    return Starlette(
        routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan
    )


# --------------------------------------------------------------------------------------------
# connections


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with the deadlines it lacks (see :class:`ServerLimits`).

    uvicorn arms its idle (keep-alive) timer only after a response, so a client that connects and
    sends nothing is never dropped, and it has no limit on the time to send a request or on the
    size of its head. Answers given here are JSON, like the app's.
    """

    def __init__(self, *args: Any, request_timeout: float, max_header_bytes: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._request_timeout = request_timeout
        self._max_header_bytes = max_header_bytes
        self._deadline: Optional[asyncio.TimerHandle] = None
        self._head_bytes: Optional[int] = 0  # of the request head being read; None in a body

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            if self._head_bytes > self._max_header_bytes:
                self._refuse(
                    431,
                    "RequestHeaderFieldsTooLarge",
                    f"the request head is larger than {self._max_header_bytes} bytes.",
                )
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self._request_timeout, self._request_timed_out)

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_deadline()
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "InvalidHttpRequest", msg)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_timed_out(self) -> None:
        self._deadline = None
        self._refuse(
            408,
            "RequestTimeout",
            f"the request was not received within {self._request_timeout:g} seconds.",
        )

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` with a JSON error (unless a response is under way) and close."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started or cycle.response_complete:
            body = encode({"code": code, "message": message})
            head = [f"HTTP/1.1 {status} {_REASONS[status]}".encode()]
            head += [name + b": " + value for name, value in self.server_state.default_headers]
            head += [
                b"content-type: application/json",
                b"content-length: %d" % len(body),
                b"connection: close",
            ]
            self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
}


def _uvicorn_options(limits: ServerLimits) -> dict[str, Any]:
    """uvicorn settings shared by :func:`serve` and :class:`BackgroundServer`."""
    return {
        "http": functools.partial(
            GuardedHttpProtocol,
            request_timeout=limits.request_timeout,
            max_header_bytes=limits.max_header_bytes,
        ),
        "timeout_keep_alive": limits.idle_timeout,
        "limit_concurrency": limits.max_connections,
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
    }


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    limits: ServerLimits = ServerLimits(),
) -> None:
    """Run the server until interrupted (the key comes from ``ANOMALY_DETECTOR_KEY``)."""
    uvicorn.run(
        "anomaly_pipeline.detection.server:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        **_uvicorn_options(limits),
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class BackgroundServer:
    """The app served by uvicorn in a daemon thread, for tests and tools.

    >>> with BackgroundServer(create_app(api_key="k")) as server:
    ...     requests.post(server.url + "/anomalydetector/v1.1/timeseries/last/detect", ...)
    """

    def __init__(
        self,
        app: Optional[Starlette] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServerLimits = ServerLimits(),
    ):
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app if app is not None else create_app(),
            host=host,
            port=self.port,
            lifespan="on",
            **_uvicorn_options(limits),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the detector server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
