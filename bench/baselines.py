"""The baselines every quality table carries next to the detector (alarms per row, past only).

* ``zscore``: alarm when ``|x - mean| > 3 std`` of the previous 168 hours (none before 24 hours);
* ``median_mad``: alarm when ``|x - median| > 3.5`` robust sigmas (1.4826 MAD) of the previous 168 hours;
* ``seasonal_robust_z``: on square-root values, the same-hour median of the last 7 days as the
  expected value, 1.4826 MAD of the last week's residuals floored at 0.5 as the scale, alarm above
  5 sigmas, at most one alarm per 24 hours;
* ``last_point_72``: the retired API's way, last/detect on each trailing 72-point window
  (the tutorial's choice; ``engine.detect_last_values``).

Windows are in hours, converted to rows with the series' step (NAB's 5-minute files: 12 rows an hour).
"""

from __future__ import annotations

import warnings

import numpy as np

WEEK_HOURS = 168
DAY_HOURS = 24


def _windows(x: np.ndarray, width: int) -> np.ndarray:
    """Row t holds ``x[t - width : t]`` (NaN-padded before the start)."""
    padded = np.concatenate([np.full(width, np.nan), x])
    return np.lib.stride_tricks.sliding_window_view(padded, width)[: x.size]


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full(x.size, np.nan)
    if k < x.size:
        out[k:] = x[: x.size - k]
    return out


def _chunked(func, windows: np.ndarray) -> np.ndarray:
    out = np.empty(windows.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for lo in range(0, windows.shape[0], 2048):
            out[lo : lo + 2048] = func(windows[lo : lo + 2048], axis=1)
    return out


def zscore(x: np.ndarray, rows_per_hour: int = 1) -> np.ndarray:
    w = _windows(x, WEEK_HOURS * rows_per_hour)
    mean, std = _chunked(np.nanmean, w), _chunked(np.nanstd, w)
    seen = np.arange(x.size) >= DAY_HOURS * rows_per_hour
    return seen & np.isfinite(x) & (np.abs(x - mean) > 3.0 * std)


def median_mad(x: np.ndarray, rows_per_hour: int = 1) -> np.ndarray:
    w = _windows(x, WEEK_HOURS * rows_per_hour)
    med = _chunked(np.nanmedian, w)
    mad = _chunked(np.nanmedian, np.abs(w - med[:, None]))
    seen = np.arange(x.size) >= DAY_HOURS * rows_per_hour
    return seen & np.isfinite(x) & (np.abs(x - med) > 3.5 * 1.4826 * mad)


def seasonal_robust_z(x: np.ndarray, rows_per_hour: int = 1) -> np.ndarray:
    z = np.sqrt(np.maximum(x, 0.0))
    day = DAY_HOURS * rows_per_hour
    same_hour = np.stack([_shift(z, d * day) for d in range(1, 8)], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(same_hour, axis=1)
    resid = z - expected
    w = _windows(resid, WEEK_HOURS * rows_per_hour)
    scale = np.maximum(1.4826 * _chunked(np.nanmedian, np.abs(w - _chunked(np.nanmedian, w)[:, None])), 0.5)
    exceed = np.isfinite(resid) & np.isfinite(scale) & (np.abs(resid) > 5.0 * scale)
    alarms = np.zeros(x.size, dtype=bool)
    last = -(10**9)
    for t in np.flatnonzero(exceed):
        if t - last >= day:
            alarms[t] = True
            last = t
    return alarms


def last_point_72(x: np.ndarray, rows_per_hour: int = 1) -> np.ndarray:
    from anomaly_pipeline.detection.engine import detect_last_values

    alarms = np.zeros(x.size, dtype=bool)
    for t in range(71, x.size):
        window = x[t - 71 : t + 1]
        if not np.isfinite(window[-1]) or np.isfinite(window).sum() < 12:
            continue
        filled = np.where(np.isfinite(window), window, np.nanmedian(window))
        try:
            alarms[t] = detect_last_values(filled, sensitivity=95, max_anomaly_ratio=0.25).is_anomaly
        except ValueError:
            pass
    return alarms


BASELINES = {
    "168h z-score": zscore,
    "168h median/MAD": median_mad,
    "seasonal robust z": seasonal_robust_z,
    "last-point 72": last_point_72,
}
