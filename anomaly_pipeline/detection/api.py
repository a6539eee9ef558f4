"""The Anomaly Detector JSON API, in-process: request dict in, response dict out.

``detect_entire``, ``detect_last`` and ``detect_change_points`` take the body the retired service
took and return the body it returned (camelCase fields; v1.1 adds ``severity``). Invalid requests
raise :class:`~anomaly_pipeline.detection.errors.DetectionError` with the contract's code.
``detect_table`` is the column-oriented helper behind the ``detect`` CLI command.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Optional, Sequence

import numpy as np

from anomaly_pipeline.detection import engine, online
from anomaly_pipeline.detection.errors import (
    INVALID_MODEL_ARGUMENT,
    INVALID_SERIES,
    DetectionError,
)
from anomaly_pipeline.detection.request import (
    FIXED_STEPS,
    DEFAULT_MAX_ANOMALY_RATIO,
    DEFAULT_SENSITIVITY,
    MAX_POINTS,
    MIN_POINTS,
    DetectRequest,
    natural_periods,
    parse_request,
)

TABLE_COLUMNS = (
    "timestamp",
    "value",
    "expected_value",
    "upper_margin",
    "lower_margin",
    "is_anomaly",
    "is_positive_anomaly",
    "is_negative_anomaly",
    "severity",
)
MODES = ("entire", "last", "stream")


def _run_engine(func, *args, **kwargs):
    """Engine refusals (ValueError) become InvalidSeries rather than server errors."""
    try:
        return func(*args, **kwargs)
    except ValueError as exc:
        raise DetectionError(INVALID_SERIES, f"the series cannot be analysed: {exc}") from None


def _floats(array: np.ndarray, positions: np.ndarray) -> list[Optional[float]]:
    """Floats at ``positions``; a non-finite engine output becomes null (JSON has no NaN)."""
    selected = np.asarray(array, dtype=np.float64)[positions]
    if np.isfinite(selected).all():
        return selected.tolist()
    return [x if np.isfinite(x) else None for x in selected.tolist()]


def _bools(array: np.ndarray, positions: np.ndarray) -> list[bool]:
    return np.asarray(array, dtype=bool)[positions].tolist()


def _series_response(result: engine.SeriesResult, positions: np.ndarray, version: str) -> dict:
    response = {
        "period": int(result.period),
        "expectedValues": _floats(result.expected_values, positions),
        "upperMargins": _floats(result.upper_margins, positions),
        "lowerMargins": _floats(result.lower_margins, positions),
        "isAnomaly": _bools(result.is_anomaly, positions),
        "isPositiveAnomaly": _bools(result.is_positive_anomaly, positions),
        "isNegativeAnomaly": _bools(result.is_negative_anomaly, positions),
    }
    if version != "v1.0":
        response["severity"] = _floats(result.severity, positions)
    return response


def _anomaly_call(func, request: DetectRequest, **extra):
    """An anomaly engine function on the request's series with its model arguments."""
    return _run_engine(
        func,
        request.values,
        period=request.period,
        sensitivity=request.sensitivity,
        max_anomaly_ratio=request.max_anomaly_ratio,
        **extra,
    )


def _entire(request: DetectRequest) -> engine.SeriesResult:
    return _anomaly_call(engine.detect_entire_values, request, natural_periods=_natural(request))


def _online_settings(request: DetectRequest) -> online.OnlineSettings:
    """The online detector's calendar cycles: the request's period if given, else the granularity's."""
    step = FIXED_STEPS.get(request.granularity)
    step_seconds = step.total_seconds() * request.custom_interval if step else None
    settings = online.DEFAULT_SETTINGS.for_step(step_seconds, request.period)
    if step_seconds is None and not request.period:  # monthly, yearly: their calendar cycle
        settings = replace(settings, periods=_natural(request))
    return settings


def _gaps_kept(request: DetectRequest) -> np.ndarray:
    """The request's grid with the points sent and NaN elsewhere: the online detector leaves gaps
    out of its history rather than imputing them."""
    grid = np.full(request.values.size, np.nan)
    grid[request.positions] = request.input_values
    return grid


def _online(request: DetectRequest) -> online.OnlineResult:
    return _run_engine(online.detect, _gaps_kept(request), sensitivity=request.sensitivity, settings=_online_settings(request))


def _last(request: DetectRequest) -> engine.LastResult:
    """The online detector's verdict on the last point, judged from the points before it."""
    settings = _online_settings(request)
    result = _run_engine(online.detect, _gaps_kept(request), sensitivity=request.sensitivity, settings=settings)
    value = float(request.input_values[-1])
    judged = bool(result.judged[-1])
    return engine.LastResult(
        period=int(result.period[-1]),
        expected_value=float(result.expected[-1]) if judged else value,
        upper_margin=float(result.upper_margin[-1]) if judged else 0.0,
        lower_margin=float(result.lower_margin[-1]) if judged else 0.0,
        is_anomaly=bool(result.is_anomaly[-1]),
        is_positive_anomaly=bool(result.is_positive[-1]),
        is_negative_anomaly=bool(result.is_negative[-1]),
        severity=float(result.severity[-1]),
        suggested_window=online.suggested_window(int(result.period[-1])),
    )


def _natural(request: DetectRequest) -> tuple[int, ...]:
    return natural_periods(request.granularity, request.custom_interval)


def last_response(result: engine.LastResult, version: str = "v1.1") -> dict:
    """The last/detect body for an engine result."""
    response = {
        "period": int(result.period),
        "suggestedWindow": int(result.suggested_window),
        "expectedValue": float(result.expected_value),
        "upperMargin": float(result.upper_margin),
        "lowerMargin": float(result.lower_margin),
        "isAnomaly": bool(result.is_anomaly),
        "isPositiveAnomaly": bool(result.is_positive_anomaly),
        "isNegativeAnomaly": bool(result.is_negative_anomaly),
    }
    if version != "v1.0":
        response["severity"] = float(result.severity)
    return response


def detect_entire(body: Any, *, version: str = "v1.1") -> dict:
    """``POST /timeseries/entire/detect``: a verdict for every point sent."""
    request = parse_request(body, kind="entire", version=version)
    return _series_response(_entire(request), request.positions, version)


def detect_last(body: Any, *, version: str = "v1.1") -> dict:
    """``POST /timeseries/last/detect``: the verdict for the last point sent."""
    request = parse_request(body, kind="last", version=version)
    return last_response(_last(request), version)


def detect_change_points(body: Any, *, version: str = "v1.1") -> dict:
    """``POST /timeseries/changepoint/detect``: trend change points and their confidence."""
    request = parse_request(body, kind="changepoint", version=version)
    result = _run_engine(
        engine.detect_change_points_values,
        request.values,
        period=request.period,
        stable_trend_window=request.stable_trend_window,
        threshold=request.threshold,
    )
    return {
        "period": int(result.period),
        "isChangePoint": _bools(result.is_change_point, request.positions),
        "confidenceScores": _floats(result.confidence_scores, request.positions),
    }


ENDPOINTS = {
    "entire": detect_entire,
    "last": detect_last,
    "changepoint": detect_change_points,
}


def detect_table(
    timestamps: Sequence[datetime | str],
    values: Sequence[Any],
    *,
    mode: str = "entire",
    granularity: str,
    custom_interval: int = 1,
    period: Optional[int] = None,
    sensitivity: int = DEFAULT_SENSITIVITY,
    max_anomaly_ratio: float = DEFAULT_MAX_ANOMALY_RATIO,
    window: Optional[int] = None,
) -> dict[str, list]:
    """Detect over a (timestamp, value) table; returns the ``TABLE_COLUMNS`` as lists.

    ``entire`` judges every point with the whole series (8640 points at most, like the API);
    ``last`` returns one row, the last point; ``stream`` judges each point with the online
    detector from the points up to it (the last ``window`` of them; its whole memory by default,
    as the pipeline does) and has no length limit.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    body = {
        "series": [{"timestamp": t, "value": v} for t, v in zip(timestamps, values)],
        "granularity": granularity,
        "customInterval": custom_interval,
        "period": period,
        "sensitivity": sensitivity,
        "maxAnomalyRatio": max_anomaly_ratio,
    }
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < MIN_POINTS):
        raise DetectionError(
            INVALID_MODEL_ARGUMENT, f"window must be an integer >= {MIN_POINTS}, got {window!r}."
        )
    kind = "last" if mode == "last" else "entire"
    request = parse_request(body, kind=kind, max_points=None if mode == "stream" else MAX_POINTS)
    if mode == "last":
        last = _last(request)
        return {
            "timestamp": [request.timestamps[-1]],
            "value": [float(request.input_values[-1])],
            "expected_value": [float(last.expected_value)],
            "upper_margin": [float(last.upper_margin)],
            "lower_margin": [float(last.lower_margin)],
            "is_anomaly": [bool(last.is_anomaly)],
            "is_positive_anomaly": [bool(last.is_positive_anomaly)],
            "is_negative_anomaly": [bool(last.is_negative_anomaly)],
            "severity": [float(last.severity)],
        }
    if mode == "stream":
        history = window or request.values.size
        found = _run_engine(
            online.detect_recent, _gaps_kept(request), 0, history=history,
            sensitivity=request.sensitivity, settings=_online_settings(request),
        )  # fmt: skip
        result = online.as_series_result(found)
    else:
        result = _entire(request)
    pos = request.positions
    return {
        "timestamp": list(request.timestamps),
        "value": request.input_values.tolist(),
        "expected_value": _floats(result.expected_values, pos),
        "upper_margin": _floats(result.upper_margins, pos),
        "lower_margin": _floats(result.lower_margins, pos),
        "is_anomaly": _bools(result.is_anomaly, pos),
        "is_positive_anomaly": _bools(result.is_positive_anomaly, pos),
        "is_negative_anomaly": _bools(result.is_negative_anomaly, pos),
        "severity": _floats(result.severity, pos),
    }
