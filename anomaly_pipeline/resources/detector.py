"""The detector box: hourly verdicts from the online detector. Interface + local and REST implementations.

- :class:`LocalAnomalyDetector` runs the online detector in-process over the whole range at once
  (a year of hours in well under a second).
- :class:`RestAnomalyDetector` asks an Anomaly Detector endpoint (this project's ``serve-detector``
  or any server keeping the retired Azure contract) for a v1.1 last/detect verdict per hour, on the
  same trailing history. This project's server answers last/detect with the same online detector,
  so both give the same verdicts.

Missing hours are NaN in ``values``: they get no verdict and are left out of the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional, Sequence

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr

from anomaly_pipeline.detection.client import AnomalyDetectorClient
from anomaly_pipeline.detection.errors import REQUEST_FAILED, UNAUTHORIZED, DetectionError
from anomaly_pipeline.detection.online import DEFAULT_SETTINGS, MIN_SCALE_POINTS, OnlineResult, detect_recent, memory_points
from anomaly_pipeline.detection.request import DEFAULT_SENSITIVITY, MAX_SENSITIVITY

HOURLY_SETTINGS = DEFAULT_SETTINGS.for_step(3600)
HOURLY_MEMORY = memory_points(HOURLY_SETTINGS)
SERVICE_FAILURES = (REQUEST_FAILED, UNAUTHORIZED)  # the detector did not answer: not a verdict


@dataclass(frozen=True)
class HourlyVerdicts(OnlineResult):
    """The online detector's per-hour result, plus what the verdict table records about each hour.
    (A REST endpoint does not send `surprise`: it is NaN there.)"""

    points_used: np.ndarray  # hours with a value in the history the verdict was judged on
    rejected: np.ndarray  # the detector's error code for a window it refused, else ""

    @classmethod
    def empty(cls, n: int) -> "HourlyVerdicts":
        nan, no = np.full(n, np.nan), np.zeros(n, dtype=bool)
        return cls(
            expected=nan, upper_margin=nan.copy(), lower_margin=nan.copy(), is_anomaly=no,
            is_positive=no.copy(), is_negative=no.copy(), severity=np.zeros(n), surprise=nan.copy(),
            judged=no.copy(), period=np.zeros(n, dtype=np.int64), points_used=np.zeros(n, dtype=np.int64),
            rejected=np.full(n, "", dtype=object),
        )  # fmt: skip


def _points_used(values: np.ndarray, first: int, history: int) -> np.ndarray:
    present = np.concatenate([[0], np.cumsum(np.isfinite(values))])
    t = np.arange(first, values.size)
    return present[t + 1] - present[np.maximum(t - history + 1, 0)]


class AnomalyDetectorFailure(dg.Failure):
    """The detector could not answer (unreachable, unauthorised, failing): the run fails and is retried."""


class AnomalyDetector(dg.ConfigurableResource):
    """Judges hours from the hourly history up to each of them (the online detector's verdicts).

    `sensitivity` (0..99) is a false-alarm budget: higher flags more (see the README's mapping).
    """

    sensitivity: int = Field(
        default=DEFAULT_SENSITIVITY, ge=0, le=MAX_SENSITIVITY, description="0..99; higher flags more."
    )

    def judge_recent(
        self, hours: Sequence[datetime], values: np.ndarray, first: int, *, history: int, kind: str
    ) -> HourlyVerdicts:
        """Verdicts for ``hours[first:]``, each from the ``history`` hours ending at it."""
        values = np.asarray(values, dtype=np.float64)
        if len(hours) != values.size:
            raise ValueError(f"{len(hours)} hours for {values.size} values; they must pair up.")
        return self._judge(hours, values, first, history, kind)

    def _judge(self, hours, values: np.ndarray, first: int, history: int, kind: str) -> HourlyVerdicts:
        raise NotImplementedError

    @property
    def detector_name(self) -> str:
        """Recorded in the verdict table next to each verdict."""
        raise NotImplementedError


class LocalAnomalyDetector(AnomalyDetector):
    """The online detector in-process: no network, one vectorised pass per metric and range."""

    def _judge(self, hours, values: np.ndarray, first: int, history: int, kind: str) -> HourlyVerdicts:
        found = detect_recent(values, first, history=history, sensitivity=self.sensitivity, kind=kind, settings=HOURLY_SETTINGS)
        return HourlyVerdicts(
            **vars(found),
            points_used=_points_used(values, first, history),
            rejected=np.full(values.size - first, "", dtype=object),
        )

    @property
    def detector_name(self) -> str:
        return "local"


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class RestAnomalyDetector(AnomalyDetector):
    """An Anomaly Detector REST endpoint: one v1.1 last/detect request per hour, on its history.

    Hours without a value are left out of the request (``imputeMode: notFill``). `api_key`, when
    set, is sent as `Ocp-Apim-Subscription-Key`; set it from `EnvVar("ANOMALY_DETECTOR_KEY")`.
    Retries 429/5xx/connection errors `max_retries` times with exponential backoff; a detector
    that still cannot answer fails the run (`AnomalyDetectorFailure`) instead of writing verdicts.
    """

    endpoint: str = Field(description="Base URL, e.g. http://127.0.0.1:8080")
    api_key: Optional[str] = Field(default=None, description="Subscription key; use EnvVar('ANOMALY_DETECTOR_KEY').")
    timeout: float = Field(default=10.0, description="Seconds per attempt.")
    max_retries: int = Field(default=3, description="Retries after the first attempt.")

    _client: Optional[AnomalyDetectorClient] = PrivateAttr(default=None)

    def __repr_args__(self) -> Any:  # keeps the key out of repr/str and so out of logs
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "api_key" and value else value)

    @property
    def client(self) -> AnomalyDetectorClient:
        if self._client is None:
            self._client = AnomalyDetectorClient(
                self.endpoint, self.api_key, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _judge(self, hours, values: np.ndarray, first: int, history: int, kind: str) -> HourlyVerdicts:
        out = HourlyVerdicts.empty(values.size - first)
        out.points_used[:] = _points_used(values, first, history)
        for i, t in enumerate(range(first, values.size)):
            window = range(max(0, t - history + 1), t + 1)
            present = [j for j in window if np.isfinite(values[j])]
            if not np.isfinite(values[t]) or not self._has_scale(values, t, window.start):
                continue  # as the online detector: no verdict without a noise scale yet
            try:
                response = self.client.detect_last(self._body(hours, values, present), api_version="v1.1")
            except DetectionError as error:
                if error.code in SERVICE_FAILURES:
                    raise AnomalyDetectorFailure(
                        description=f"The anomaly detector at {self.endpoint} did not answer: {error.message}"
                    ) from None
                out.rejected[i] = error.code  # the service judged this window unusable
                continue
            self._fill(out, i, float(values[t]), response)
        return out

    @staticmethod
    def _has_scale(values: np.ndarray, t: int, start: int) -> bool:
        recent = values[max(start, t - HOURLY_SETTINGS.points(HOURLY_SETTINGS.scale_hours)) : t]
        return int(np.isfinite(recent).sum()) >= MIN_SCALE_POINTS

    def _body(self, hours, values: np.ndarray, present: list[int]) -> dict:
        return {
            "series": [{"timestamp": _iso(hours[j]), "value": float(values[j])} for j in present],
            "granularity": "hourly",
            "sensitivity": self.sensitivity,
            "imputeMode": "notFill",
        }

    @staticmethod
    def _fill(out: HourlyVerdicts, i: int, value: float, response: dict) -> None:
        out.judged[i] = True
        out.expected[i] = float(response["expectedValue"])
        out.upper_margin[i] = float(response["upperMargin"])
        out.lower_margin[i] = float(response["lowerMargin"])
        out.is_anomaly[i] = bool(response["isAnomaly"])
        out.is_positive[i] = bool(response["isPositiveAnomaly"])
        out.is_negative[i] = bool(response["isNegativeAnomaly"])
        out.severity[i] = float(response.get("severity", 0.0))
        out.period[i] = int(response["period"])

    @property
    def detector_name(self) -> str:
        return "rest"

