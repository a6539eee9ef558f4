"""The detector box: judge the last hour of a window. Interface + local and REST implementations.

- :class:`LocalAnomalyDetector` runs the engine in-process on a numpy array (the fast path used
  by backfills: thousands of calls per run).
- :class:`RestAnomalyDetector` calls an Anomaly Detector endpoint (this project's
  ``serve-detector`` or any server keeping the retired Azure contract) with the v1.1
  last/detect request.

Both refuse and fill a window the same way (see ``anomaly_pipeline.detection.api``), so on the same
window they return the same verdict. Missing hours are NaN (or None) in ``values``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional, Sequence, Union

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr

from anomaly_pipeline.detection.api import detect_last_array, last_response
from anomaly_pipeline.detection.client import AnomalyDetectorClient
from anomaly_pipeline.detection.errors import BAD_ARGUMENT, DetectionError
from anomaly_pipeline.detection.request import (
    DEFAULT_MAX_ANOMALY_RATIO,
    DEFAULT_SENSITIVITY,
    parse_granularity,
)

Values = Union[Sequence[Optional[float]], np.ndarray]


@dataclass(frozen=True)
class LastPointVerdict:
    """The verdict on the last (present) point of a window."""

    value: float
    expected_value: float
    upper_margin: float
    lower_margin: float
    is_anomaly: bool
    is_positive_anomaly: bool
    is_negative_anomaly: bool
    severity: float
    period: int
    suggested_window: int


def _as_array(values: Values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _verdict(value: float, response: dict) -> LastPointVerdict:
    """A verdict from a last/detect response body."""
    return LastPointVerdict(
        value=value,
        expected_value=float(response["expectedValue"]),
        upper_margin=float(response["upperMargin"]),
        lower_margin=float(response["lowerMargin"]),
        is_anomaly=bool(response["isAnomaly"]),
        is_positive_anomaly=bool(response["isPositiveAnomaly"]),
        is_negative_anomaly=bool(response["isNegativeAnomaly"]),
        severity=float(response.get("severity", 0.0)),
        period=int(response["period"]),
        suggested_window=int(response["suggestedWindow"]),
    )


def _check_window(timestamps: Sequence[datetime], values: np.ndarray, granularity: str) -> None:
    parse_granularity(granularity, required=True)
    if len(timestamps) != len(values):
        raise DetectionError(
            BAD_ARGUMENT,
            f"{len(timestamps)} timestamps for {len(values)} values; they must pair up.",
        )


class AnomalyDetector(dg.ConfigurableResource):
    """Judges the last point of an evenly spaced window (Anomaly Detector last/detect semantics).

    `sensitivity` (0..99, higher = narrower margins, more anomalies), `max_anomaly_ratio`
    (0 < r < 0.5) and `period` (seasonal period in points; empty = detect it) are the API's model
    arguments. Windows need 12..8640 points present; a seasonal window missing over half its
    points is refused with DetectionError(InvalidSeries).
    """

    sensitivity: int = Field(default=DEFAULT_SENSITIVITY, description="0..99; higher flags more.")
    max_anomaly_ratio: float = Field(
        default=DEFAULT_MAX_ANOMALY_RATIO, description="Upper bound on the share of anomalies."
    )
    period: Optional[int] = Field(
        default=None, description="Seasonal period in points; empty to detect it."
    )

    def detect_last(
        self,
        timestamps: Sequence[datetime],
        values: Values,
        granularity: str = "hourly",
    ) -> LastPointVerdict:
        """Verdict on the last present point; `values[i]` is at `timestamps[i]`, NaN/None = missing."""
        array = _as_array(values)
        _check_window(timestamps, array, granularity)
        return self._judge(timestamps, array, granularity)

    def _judge(
        self, timestamps: Sequence[datetime], values: np.ndarray, granularity: str
    ) -> LastPointVerdict:
        """Implementations: the verdict on a checked window (float array, NaN = missing)."""
        raise NotImplementedError

    @property
    def detector_name(self) -> str:
        """Recorded in the verdict table next to each verdict."""
        raise NotImplementedError


class LocalAnomalyDetector(AnomalyDetector):
    """The engine in-process: no network, about 1-2 ms per window of a few days of hours."""

    def _judge(
        self, timestamps: Sequence[datetime], values: np.ndarray, granularity: str
    ) -> LastPointVerdict:
        value, result = detect_last_array(
            values,
            period=self.period,
            sensitivity=self.sensitivity,
            max_anomaly_ratio=self.max_anomaly_ratio,
            granularity=granularity,
        )
        return _verdict(value, last_response(result))

    @property
    def detector_name(self) -> str:
        return "local"


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class RestAnomalyDetector(AnomalyDetector):
    """An Anomaly Detector REST endpoint (v1.1 last/detect; missing points left out, imputeMode auto).

    `api_key` is sent as `Ocp-Apim-Subscription-Key`; set it from `EnvVar("ANOMALY_DETECTOR_KEY")`.
    Retries 429/5xx/connection errors `max_retries` times with exponential backoff.
    """

    endpoint: str = Field(description="Base URL, e.g. http://127.0.0.1:8080")
    api_key: Optional[str] = Field(
        default=None, description="Subscription key; use EnvVar('ANOMALY_DETECTOR_KEY')."
    )
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

    def _judge(
        self, timestamps: Sequence[datetime], values: np.ndarray, granularity: str
    ) -> LastPointVerdict:
        array = values
        present = np.flatnonzero(~np.isnan(array))
        body: dict[str, Any] = {
            "series": [
                {"timestamp": _iso(timestamps[i]), "value": float(array[i])} for i in present
            ],
            "granularity": granularity,
            "sensitivity": self.sensitivity,
            "maxAnomalyRatio": self.max_anomaly_ratio,
            "imputeMode": "auto",
        }
        if self.period is not None:
            body["period"] = self.period
        response = self.client.detect_last(body, api_version="v1.1")
        return _verdict(float(array[present[-1]]), response)

    @property
    def detector_name(self) -> str:
        return "rest"
