"""HTTP server for the Anomaly Detector REST contract (Starlette app served by uvicorn).

Endpoints (POST, JSON): ``/anomalydetector/{v1.0,v1.1}/timeseries/{entire,last,changepoint}/detect``.

- Invalid requests: HTTP 400 ``{"code": ..., "message": ...}`` with the contract's codes; a body
  that is not JSON gives ``InvalidJsonFormat``; a body over ``max_body_bytes`` gives 413 with a
  JSON body; unknown paths 404 and other methods 405, both JSON. Bad input never gives a 500.
- When a key is configured (argument ``api_key`` or environment variable
  ``ANOMALY_DETECTOR_KEY``) the header ``Ocp-Apim-Subscription-Key`` must carry it; otherwise 401
  with the original service's body ``{"error": {"code": "401", "message": ...}}``. The key is
  compared in constant time and never logged or echoed.
- Detection is CPU-bound and short (about a millisecond for 72 points): small series run inline
  on the event loop, large ones in a worker thread so small requests keep being served. For
  throughput use several worker processes (``serve(workers=N)``, one per core).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import threading
import time
from typing import Any, Optional

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anomaly_pipeline.detection.api import ENDPOINTS
from anomaly_pipeline.detection.errors import INVALID_JSON_FORMAT, DetectionError
from anomaly_pipeline.detection.request import VERSIONS

KEY_ENV_VAR = "ANOMALY_DETECTOR_KEY"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024  # 8640 points take about 0.5 MB
# Series with more points than this are analysed in a worker thread instead of on the loop.
INLINE_MAX_POINTS = 1000
UNAUTHORIZED_BODY = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
        "to provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource.",
    }
}

logger = logging.getLogger(__name__)


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json"
    )


def _error(code: str, message: str, status: int = 400) -> Response:
    return _json({"code": code, "message": message}, status)


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


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DetectionError(INVALID_JSON_FORMAT, "the request body is not valid JSON.") from None


def create_app(
    api_key: Optional[str] = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    inline_max_points: int = INLINE_MAX_POINTS,
) -> Starlette:
    """The ASGI app. ``api_key=None`` reads ``ANOMALY_DETECTOR_KEY`` (unset or empty: no key)."""
    key = api_key if api_key is not None else os.environ.get(KEY_ENV_VAR, "")
    expected_key = key.encode() if key else None

    def authorized(request: Request) -> bool:
        if expected_key is None:
            return True
        given = request.headers.get(KEY_HEADER, "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, expected_key)

    async def detect(request: Request) -> Response:
        version = request.path_params["version"]
        endpoint = ENDPOINTS.get(request.path_params["kind"])
        if version not in VERSIONS or endpoint is None:
            return _error("NotFound", "Resource not found.", 404)
        if not authorized(request):
            return _json(UNAUTHORIZED_BODY, 401)
        try:
            raw = await _read_body(request, max_body_bytes)
        except _BodyTooLarge:
            return _error(
                "RequestEntityTooLarge",
                f"the request body is larger than {max_body_bytes} bytes.",
                413,
            )
        try:
            body = _parse_json(raw)
            series = body.get("series") if isinstance(body, dict) else None
            if isinstance(series, list) and len(series) > inline_max_points:
                result = await anyio.to_thread.run_sync(lambda: endpoint(body, version=version))
            else:
                result = endpoint(body, version=version)
        except DetectionError as exc:
            return _json(exc.to_dict(), exc.status)
        except Exception:  # a bug, not bad input: log without the body, answer without details
            logger.exception("detection failed on %s", request.url.path)
            return _error("InternalServerError", "the detector failed on this request.", 500)
        return _json(result)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        codes = {404: "NotFound", 405: "MethodNotAllowed"}
        return _error(codes.get(exc.status_code, "HttpError"), str(exc.detail), exc.status_code)

    routes = [
        Route(
            "/anomalydetector/{version}/timeseries/{kind}/detect",
            detect,
            methods=["POST"],
        )
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def serve(host: str = "127.0.0.1", port: int = 8080, workers: int = 1) -> None:
    """Run the server until interrupted (the key comes from ``ANOMALY_DETECTOR_KEY``)."""
    uvicorn.run(
        "anomaly_pipeline.detection.server:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        log_level="warning",
        access_log=False,
        server_header=False,
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

    def __init__(self, app: Optional[Starlette] = None, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app if app is not None else create_app(),
            host=host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
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
