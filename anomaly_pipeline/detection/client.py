"""HTTP client for the Anomaly Detector REST contract (this project's server or any compatible one).

>>> client = AnomalyDetectorClient("http://127.0.0.1:8080", key=os.environ.get("ANOMALY_DETECTOR_KEY"))
>>> client.detect_last({"series": [...], "granularity": "hourly"})["isAnomaly"]

Retries with exponential backoff (and jitter) on 429 (honouring ``Retry-After``), 5xx, connection
errors and timeouts; a 400 raises :class:`DetectionError` with the service's code and message.
The key travels only in the ``Ocp-Apim-Subscription-Key`` header of each request: it is never
logged and never part of the client's repr/str or of an exception.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import Any, Callable, Optional

import requests

from anomaly_pipeline.detection.errors import REQUEST_FAILED, UNAUTHORIZED, DetectionError

logger = logging.getLogger(__name__)

KEY_HEADER = "Ocp-Apim-Subscription-Key"
API_PREFIX = "/anomalydetector"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0


def _retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class AnomalyDetectorClient:
    """Calls ``{endpoint}/anomalydetector/{api_version}/timeseries/.../detect``.

    ``timeout`` is seconds per attempt; ``max_retries`` the retries after the first attempt;
    ``backoff`` the first wait (doubled each retry, capped by ``max_backoff``).
    """

    def __init__(
        self,
        endpoint: str,
        key: Optional[str] = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        api_version: str = "v1.1",
        session: Optional[requests.Session] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.api_version = api_version
        self.__key = key or None
        self._session = session or requests.Session()
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"AnomalyDetectorClient(endpoint={self.endpoint!r}, "
            f"key={'***' if self.__key else None}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, api_version={self.api_version!r})"
        )

    __str__ = __repr__

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "AnomalyDetectorClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the three endpoints -------------------------------------------------------------

    def detect_entire(self, body: dict, *, api_version: Optional[str] = None) -> dict:
        return self._post("entire", body, api_version)

    def detect_last(self, body: dict, *, api_version: Optional[str] = None) -> dict:
        return self._post("last", body, api_version)

    def detect_change_points(self, body: dict, *, api_version: Optional[str] = None) -> dict:
        return self._post("changepoint", body, api_version)

    # ---- transport -----------------------------------------------------------------------

    def _wait(self, attempt: int, retry_after: Optional[float] = None) -> float:
        delay = min(self.max_backoff, self.backoff * (2**attempt))
        delay *= 0.5 + random.random() / 2  # jitter: spread clients that failed together
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return delay

    def _post(self, kind: str, body: dict, api_version: Optional[str]) -> dict:
        path = f"{API_PREFIX}/{api_version or self.api_version}/timeseries/{kind}/detect"
        url = self.endpoint + path
        headers = {"Content-Type": "application/json"}
        if self.__key:
            headers[KEY_HEADER] = self.__key
        attempt = 0
        while True:
            try:
                response = self._session.post(url, json=body, headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{type(exc).__name__} calling {path}"
                retry_after = None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return self._result(response, path)
                problem = f"HTTP {response.status_code} from {path}"
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if attempt >= self.max_retries:
                raise DetectionError(
                    REQUEST_FAILED,
                    f"{problem}; gave up after {attempt + 1} attempts.",
                    status=0,
                )
            delay = self._wait(attempt, retry_after)
            logger.warning("%s; retrying in %.2f s (attempt %d)", problem, delay, attempt + 1)
            self._sleep(delay)
            attempt += 1

    @staticmethod
    def _result(response: requests.Response, path: str) -> dict:
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        if status == 200 and isinstance(payload, dict):
            return payload
        if status == 401:
            raise DetectionError(
                UNAUTHORIZED, f"{path}: the subscription key is missing or wrong.", status=401
            )
        if isinstance(payload, dict) and "code" in payload:
            raise DetectionError(
                str(payload["code"]), str(payload.get("message", "")), status=status
            )
        raise DetectionError(
            REQUEST_FAILED, f"HTTP {status} from {path} without a detector body.", status=status
        )
