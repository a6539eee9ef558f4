"""Numeric anomaly-detection engine (replacement for the retired Azure Anomaly Detector).

Numbers only: ``values`` is a 1-D float array in time order, evenly spaced, possibly with NaN
for missing points.  The JSON/HTTP layers live elsewhere.

Model, shared by every mode
---------------------------
* Values are mapped to a working scale ``z = g(x)``: ``log(x + c)`` for non-negative series
  (counts, volumes, averages of heavy-tailed quantities; ``c`` keeps zeros finite), identity
  otherwise.  Margins computed on that scale are mapped back, so they are asymmetric and grow
  with the level, as count noise does.
* Expected value = robust trend (moving median) + robust seasonal profile (median per phase
  of the period; period found by autocorrelation, 0 when none).
* Residual scale = robust sigma (1.4826 * MAD) of the residuals, with a small floor.
* Margin = k(sensitivity) * scale with ``k = 2 + 0.4 * (100 - sensitivity)`` robust
  sigmas (k = 4 at the default 95; higher sensitivity = narrower margins).
* Severity of an anomaly = ``1 - margin / |residual|`` in (0, 1): ranks anomalies by how far
  they leave the band.

Stream mode (and the API's last/detect) use the online detector in :mod:`anomaly_pipeline.detection.online`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import maximum_filter, median_filter, uniform_filter1d

__all__ = [
    "SeriesResult",
    "LastResult",
    "ChangePointResult",
    "detect_period",
    "detect_entire_values",
    "detect_last_values",
    "detect_stream_values",
    "detect_change_points_values",
    "margin_multiplier",
]

_MIN_CYCLES = 3  # a period needs at least this many repetitions to be detected
_MAX_PERIOD = 1000


@dataclass(frozen=True)
class SeriesResult:
    period: int
    expected_values: np.ndarray
    upper_margins: np.ndarray
    lower_margins: np.ndarray
    is_anomaly: np.ndarray
    is_positive_anomaly: np.ndarray
    is_negative_anomaly: np.ndarray
    severity: np.ndarray


@dataclass(frozen=True)
class LastResult:
    period: int
    expected_value: float
    upper_margin: float
    lower_margin: float
    is_anomaly: bool
    is_positive_anomaly: bool
    is_negative_anomaly: bool
    severity: float
    suggested_window: int


@dataclass(frozen=True)
class ChangePointResult:
    period: int
    is_change_point: np.ndarray
    confidence_scores: np.ndarray


# --------------------------------------------------------------------------- helpers


def margin_multiplier(sensitivity: float) -> float:
    """Band half-width in robust sigmas for a sensitivity in [0, 99]."""
    return 2.0 + 0.4 * (100.0 - float(sensitivity))


def _as_array(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _fill_gaps(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN/inf; constant extension at the ends; zeros if all missing."""
    finite = np.isfinite(x)
    if finite.all():
        return x
    if not finite.any():
        return np.zeros_like(x)
    idx = np.arange(x.size)
    return np.interp(idx, idx[finite], x[finite])


class _Transform:
    """``z = log(x + c)`` for non-negative series, identity otherwise."""

    __slots__ = ("log", "c", "counts")

    def __init__(self, x: np.ndarray):
        finite = x[np.isfinite(x)]
        self.log = bool(finite.size) and float(finite.min()) >= 0.0
        self.c = 0.0
        self.counts = False
        if self.log:
            med = float(_med(finite))
            integer = bool(np.all(finite == np.round(finite)))
            self.counts = integer
            c = 0.1 * med
            if integer:
                c = max(c, 1.0)
            if c <= 0.0:
                mean = float(finite.mean())
                c = 0.1 * mean if mean > 0 else 1.0
            self.c = c

    def fwd(self, x):
        return np.log(x + self.c) if self.log else x

    def inv(self, z):
        return np.exp(z) - self.c if self.log else z

    def count_floor(self, zexp):
        """Poisson noise of integer counts, on the working scale (0 when not counts)."""
        if not self.counts:
            return 0.0
        mu = np.maximum(np.exp(zexp) - self.c, 0.25)
        return np.sqrt(mu) / (mu + self.c)


def _scale_floor(z: np.ndarray, transform: _Transform) -> float:
    if transform.log:
        return 1e-3
    med = float(_med(np.abs(z))) if z.size else 0.0
    return 1e-3 * med + 1e-9


def _med(a) -> float:
    """Median of a 1-D array (cheaper than np.median on the short arrays used here)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    m = a.size
    if m == 0:
        return float("nan")
    lo, hi = (m - 1) // 2, m // 2
    s = np.partition(a, (lo, hi))
    return 0.5 * (float(s[lo]) + float(s[hi]))


def _col_medians(c: np.ndarray) -> np.ndarray:
    s = np.sort(c, axis=0)
    m = c.shape[0]
    return 0.5 * (s[(m - 1) // 2] + s[m // 2])


def _robust_sigma(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    if r.size == 0:
        return 0.0
    return 1.4826 * float(_med(np.abs(r - _med(r))))


def _odd(n: int) -> int:
    n = max(int(n), 1)
    return n if n % 2 else n + 1


# --------------------------------------------------------------------------- period


def _period_from_filled(y: np.ndarray, natural: tuple[int, ...] = ()) -> int:
    n = y.size
    max_lag = min(int(n / 2.5), _MAX_PERIOD)
    if max_lag < 2:
        return 0
    # remove a robust (Theil-Sen) linear trend
    d = y - _robust_line(y)
    # Winsorize: one burst must not decide the autocorrelation of a 72-point window.
    centre, spread = _med(d), _robust_sigma(d)
    if spread > 0:
        d = np.clip(d, centre - 4 * spread, centre + 4 * spread)
    d = d - d.mean()
    var = float(np.dot(d, d))
    if var <= 1e-12 * (1.0 + float(np.dot(y, y))):
        return 0
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(d, nfft)
    full = np.fft.irfft(f * np.conj(f), nfft)[: (2 * n) // 3 + 1] / var
    full = full * n / np.maximum(n - np.arange(full.size), 1)  # pairs shrink with the lag
    acf = full[: max_lag + 2]
    # local maxima with enough height and prominence over the dip before them
    inner = acf[2 : max_lag + 1]
    is_max = (inner > acf[1:max_lag]) & (inner >= acf[3 : max_lag + 2])
    cand = np.flatnonzero(is_max) + 2
    if cand.size == 0:
        return 0
    dips = np.minimum.accumulate(acf[1:])  # dips[l-1] = min(acf[1..l])
    height = acf[cand]
    prom = height - dips[cand - 1]
    ok = (height >= 0.3) & (prom >= 0.3)
    if not ok.any():
        return 0
    cand, height = cand[ok], height[ok]
    best = float(height.max())
    lag = int(cand[np.argmax(height >= 0.6 * best)])
    for cycle in natural:  # a calendar cycle close to the peak is the period
        if abs(lag - cycle) <= max(1, round(0.1 * cycle)) and 2 * cycle <= n:
            return cycle
    # The autocorrelation peak is broad and noisy over few cycles: settle lag-1, lag, lag+1 by
    # which one repeats itself most closely one period later.
    nearby = [l for l in (lag - 1, lag, lag + 1) if 2 <= l and 2 * l <= n]
    return min(nearby, key=lambda l: _seasonal_misfit(y, l)) if nearby else lag


def _seasonal_misfit(y: np.ndarray, period: int) -> float:
    """How far points one period apart differ (a robust AMDF); the median difference is taken
    out first, which removes any linear trend."""
    step = y[period:] - y[:-period]
    return float(_med(np.abs(step - _med(step))))


def detect_period(values, natural_periods: tuple[int, ...] = ()) -> int:
    """Dominant period in samples by autocorrelation (0 when no clear seasonality)."""
    x = _as_array(values)
    if np.isfinite(x).sum() < 2 * _MIN_CYCLES:
        return 0
    tr = _Transform(x)
    return _period_from_filled(tr.fwd(_fill_gaps(x)), natural_periods)


# --------------------------------------------------------------------------- batch model


def _phase_medians(r: np.ndarray, period: int) -> np.ndarray:
    """Median of a gap-free ``r`` per phase (index % period); the last cycle may be partial."""
    n = r.size
    cycles = -(-n // period)
    if cycles * period == n:
        return _col_medians(r.reshape(cycles, period))
    padded = np.full(cycles * period, np.inf)
    padded[:n] = r
    srt = np.sort(padded.reshape(cycles, period), axis=0)
    cnt = np.where(np.arange(period) < n - (cycles - 1) * period, cycles, cycles - 1)
    cols = np.arange(period)
    medians = 0.5 * (srt[(cnt - 1) // 2, cols] + srt[cnt // 2, cols])
    # A median of two is their mean, so one outlier (yesterday's burst) would move the profile.
    # A 72-hour window always has exactly two earlier copies of the next hour's phase: there,
    # take the median of the two and the mean of the neighbouring phases instead.
    pairs = np.flatnonzero(cnt == 2)
    if pairs.size:
        neighbours = 0.5 * (medians[(pairs - 1) % period] + medians[(pairs + 1) % period])
        medians[pairs] = np.median(np.stack([srt[0, pairs], srt[1, pairs], neighbours]), axis=0)
    return medians


def _seasonal_profile(r: np.ndarray, period: int) -> np.ndarray:
    """Median of ``r`` per phase (phase = index % period), centred to median 0."""
    prof = _phase_medians(r, period)
    return prof - _med(prof)


def _robust_line(y: np.ndarray) -> np.ndarray:
    """Theil-Sen straight line through ``y`` (pairwise-slope median over at most 40 points)."""
    n = y.size
    t = np.arange(n, dtype=np.float64)
    step = max(1, -(-n // 40))
    ts, ys = t[::step], y[::step]
    i, j = _pairs(ts.size)
    slope = float(_med((ys[j] - ys[i]) / (ts[j] - ts[i]))) if i.size else 0.0
    icpt = float(_med(y - slope * t))
    return icpt + slope * t


_PAIRS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _pairs(m: int):
    if m not in _PAIRS:
        _PAIRS[m] = np.triu_indices(m, k=1)
    return _PAIRS[m]


def _fit_batch(z: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust trend + seasonal decomposition of a gap-free series.

    Returns (trend, seasonal, prediction residuals).  With few cycles the seasonal medians would
    absorb part of the noise, so the residuals used for the scale are leave-one-cycle-out ones.
    """
    n = z.size
    if period >= 2 and n >= 2 * period:
        cycles = n // period
        w = _odd(period)
        trend = np.full(n, float(_med(z)))
        for _ in range(2):
            seasonal = np.resize(_seasonal_profile(z - trend, period), n)
            if cycles < 6:
                trend = _robust_line(z - seasonal)
            else:
                trend = uniform_filter1d(median_filter(z - seasonal, size=2 * w, mode="nearest"), w, mode="nearest")
        seasonal = np.resize(_seasonal_profile(z - trend, period), n)
        resid = z - trend - seasonal
        if cycles <= 16:
            full = cycles * period
            # Each cycle has its own level removed first: the forecast follows the level, so
            # day-to-day level changes (weekdays vs weekends) are not noise.
            c = (z[:full] - trend[:full]).reshape(cycles, period)
            c = c - np.median(c, axis=1, keepdims=True)
            loo = np.empty_like(c)
            for i in range(cycles):
                loo[i] = c[i] - _col_medians(np.delete(c, i, axis=0))
            resid = loo.ravel() - _med(loo)
        return trend, seasonal, resid
    w = _odd(min(max(n // 4, 3), 25))
    trend = median_filter(z, size=w, mode="nearest")
    return trend, np.zeros(n), z - trend


def _band(zexp, scale, k, tr: _Transform):
    expected = tr.inv(zexp)
    upper = tr.inv(zexp + k * scale) - expected
    lower = expected - tr.inv(zexp - k * scale)
    return expected, upper, lower


def _severity(z, zexp, scale, k):
    dev = np.abs(z - zexp) / (k * scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        sev = np.where(dev > 1.0, 1.0 - 1.0 / dev, 0.0)
    return np.nan_to_num(sev, nan=0.0)


def detect_entire_values(
    values, *, period=None, sensitivity=95, max_anomaly_ratio=0.25, natural_periods=()
) -> SeriesResult:
    x = _as_array(values)
    n = x.size
    present = np.isfinite(x)
    tr = _Transform(x)
    z = tr.fwd(_fill_gaps(x))
    if period is None:
        period = _period_from_filled(z, natural_periods) if present.sum() >= 2 * _MIN_CYCLES else 0
    period = int(period)
    trend, seasonal, resid = _fit_batch(z, period)
    zexp = trend + seasonal
    if resid.size == n:
        resid = np.where(present, resid, np.nan)
    scale = np.maximum(max(_robust_sigma(resid), _scale_floor(z, tr)), tr.count_floor(zexp))
    k = margin_multiplier(sensitivity)
    expected, upper, lower = _band(zexp, scale, k, tr)
    sev = np.where(present, _severity(z, zexp, scale, k), 0.0)
    flagged = sev > 0.0
    cap = int(np.floor(max_anomaly_ratio * n))
    if flagged.sum() > cap:
        keep = np.zeros(n, dtype=bool)
        if cap > 0:
            keep[np.argsort(-sev, kind="stable")[:cap]] = True
        flagged &= keep
        sev = np.where(flagged, sev, 0.0)
    pos = flagged & (z > zexp)
    neg = flagged & (z < zexp)
    return SeriesResult(
        period=period,
        expected_values=expected,
        upper_margins=upper,
        lower_margins=lower,
        is_anomaly=flagged,
        is_positive_anomaly=pos,
        is_negative_anomaly=neg,
        severity=sev,
    )


def suggested_window(period: int) -> int:
    """API rule: 4 * period + 1 when seasonal; otherwise a fixed 49-point history."""
    if period >= 2:
        return 4 * period + 1
    return 49


def _forecast_last(
    z_hist: np.ndarray, period: int, natural_periods: tuple[int, ...] = ()
) -> tuple[float, float]:
    """Expected working-scale value of the point following ``z_hist`` and the residual scale.

    The forecast is the seasonal profile at the next phase plus the level of the last cycle.
    """
    m = z_hist.size
    if period >= 2 and m >= 2 * period:
        _, seasonal, resid = _fit_batch(z_hist, period)
        level = float(_med(z_hist[-period:] - seasonal[-period:]))
        return level + float(seasonal[m - period]), _robust_sigma(resid)
    w = min(m, 25)
    level = float(_med(z_hist[-w:]))
    if any(m < 2 * cycle for cycle in natural_periods):
        # Too short to model a calendar cycle that is probably there: the margin must cover
        # it, so it comes from out-of-sample errors, which the cycle's swings inflate.
        return level, _robust_sigma(_trailing_median_errors(z_hist))
    return level, _robust_sigma(_neighbour_median_errors(z_hist))


def _trailing_median_errors(z: np.ndarray) -> np.ndarray:
    """One-step errors of the non-seasonal forecast (the median of the preceding points)."""
    w = max(3, min(25, z.size // 2))
    if z.size <= w:
        return z - _med(z)
    windows = np.lib.stride_tricks.sliding_window_view(z[:-1], w)
    return z[w:] - _col_medians(windows.T)


def _neighbour_median_errors(z: np.ndarray) -> np.ndarray:
    """Each point minus the median of its neighbours (itself left out), over a window like the
    non-seasonal trend's. Unlike in-sample median-filter residuals, which are exactly zero
    wherever a point is its window's median, these cannot collapse the scale to nothing."""
    half = _odd(min(max(z.size // 4, 3), 25)) // 2
    padded = np.pad(z, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    neighbours = np.delete(windows, half, axis=1)
    return z - _col_medians(neighbours.T)


def detect_last_values(
    values, *, period=None, sensitivity=95, max_anomaly_ratio=0.25, natural_periods=()
) -> LastResult:
    x = _as_array(values)
    tr = _Transform(x)
    z_all = tr.fwd(_fill_gaps(x))
    if period is None:
        enough = np.isfinite(x[:-1]).sum() >= 2 * _MIN_CYCLES
        period = _period_from_filled(z_all[:-1], natural_periods) if enough else 0
    period = int(period)
    hist = z_all[:-1]
    zexp, scale = _forecast_last(hist, period, tuple(natural_periods))
    scale = float(np.maximum(max(scale, _scale_floor(hist, tr)), tr.count_floor(zexp)))
    k = margin_multiplier(sensitivity)
    expected, upper, lower = _band(np.array([zexp]), scale, k, tr)
    last = x[-1]
    if np.isfinite(last):
        zl = float(tr.fwd(np.array([last]))[0])
        sev = float(_severity(np.array([zl]), np.array([zexp]), scale, k)[0])
    else:
        zl, sev = zexp, 0.0
    flag = sev > 0.0
    return LastResult(
        period=period,
        expected_value=float(expected[0]),
        upper_margin=float(upper[0]),
        lower_margin=float(lower[0]),
        is_anomaly=flag,
        is_positive_anomaly=flag and zl > zexp,
        is_negative_anomaly=flag and zl < zexp,
        severity=sev,
        suggested_window=suggested_window(period),
    )


def detect_stream_values(values, *, window=None, period=None, sensitivity=95, max_anomaly_ratio=0.25, natural_periods=()) -> SeriesResult:
    """Stream mode: the online detector (:mod:`anomaly_pipeline.detection.online`), each point
    judged from the last ``window`` points up to it (its whole memory by default).
    ``max_anomaly_ratio`` is accepted for the API's signature; the online detector's false-alarm
    budget is its sensitivity."""
    from anomaly_pipeline.detection import online

    x = _as_array(values)
    periods = (period,) if period else tuple(natural_periods)
    settings = replace(online.DEFAULT_SETTINGS, periods=tuple(p for p in periods if p >= 2))
    found = online.detect_recent(x, 0, history=window or max(x.size, 1), sensitivity=sensitivity, settings=settings)
    return online.as_series_result(found)


def detect_change_points_values(values, *, period=None, stable_trend_window=None, threshold=None) -> ChangePointResult:
    """Level shifts: points where the robust mean of the next ``w`` points differs from the
    previous ``w`` by much more than the noise.  Confidence in [0, 1]."""
    x = _as_array(values)
    n = x.size
    tr = _Transform(x)
    z = tr.fwd(_fill_gaps(x))
    if period is None:
        period = _period_from_filled(z) if np.isfinite(x).sum() >= 2 * _MIN_CYCLES else 0
    period = int(period)
    if period >= 2 and n >= 2 * period:
        z = z - _fit_batch(z, period)[1]
    w = int(stable_trend_window) if stable_trend_window else max(5, min(n // 8, 24))
    w = max(2, min(w, n // 2))
    thr = 0.9 if threshold is None else float(threshold)
    scale = max(_robust_sigma(np.diff(z)) / np.sqrt(2.0), _scale_floor(z, tr))
    conf = np.zeros(n)
    if n >= 2 * w:
        cs = np.concatenate([[0.0], np.cumsum(z)])
        i = np.arange(w, n - w + 1)
        before = (cs[i] - cs[i - w]) / w
        after = (cs[i + w] - cs[i]) / w
        stat = np.abs(after - before) / (scale * np.sqrt(2.0 / w))
        conf[i] = 1.0 - np.exp(-np.maximum(stat - 3.0, 0.0) / 3.0)
    is_cp = np.zeros(n, dtype=bool)
    cand = conf >= thr
    # keep local maxima within +-w
    if cand.any():
        local_max = maximum_filter(conf, size=2 * w + 1, mode="nearest")
        is_cp = cand & (conf >= local_max)
        # de-duplicate flat plateaus: keep the first of consecutive marks
        is_cp[1:] &= ~is_cp[:-1]
    return ChangePointResult(period=period, is_change_point=is_cp, confidence_scores=conf)
