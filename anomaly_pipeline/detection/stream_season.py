"""Seasonality for the stream detector, computed on the history seen so far only.

Kept apart from the batch engine on purpose: the stream detector's behaviour (and its NAB
score) must not move when the batch/last-point modes are retuned.

* :func:`find_period`: a calendar cycle of the granularity (a day, a week) whose own
  autocorrelation peak is clear (height and prominence at least 0.2), else the lag of the most
  prominent autocorrelation peak of the detrended history (at least 0.3, lags up to 40% of the
  history): a calendar cycle within 8% of it, or the lag within 8% with the smallest mean
  difference one period apart (the peak of the autocorrelation is broad over few cycles);
* :func:`phase_profile`: the seasonal profile of the history, one value per phase
  ``t % period``: the median per phase of the series minus its rolling median (one period
  wide), centred to median 0;
* :func:`seasonal_gain`: how much of the error on the latest part of the history a profile
  learnt on the earlier part removes (the stream detector models a cycle only when it predicts).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

MAX_PERIOD = 1500
REFINE = 0.08  # the period is settled within +-8% of the autocorrelation peak
CALENDAR_HEIGHT = 0.2  # a calendar cycle needs less autocorrelation than any other lag


def find_period(y: np.ndarray, min_height: float = 0.3, natural: tuple[int, ...] = ()) -> int:
    """Dominant period (samples) of a gap-free working-scale history, 0 when none is clear.

    ``natural`` are the calendar cycles of the series' granularity (a day, a week...): one with
    a clear autocorrelation peak of its own, or within 8% of the highest peak, is the period."""
    n = y.size
    top = min(int(0.4 * n), MAX_PERIOD)
    if top < 3:
        return 0
    half = n // 2
    t = np.arange(n, dtype=np.float64)
    slope = (np.median(y[half:]) - np.median(y[:half])) / max(n - half, 1)
    d = y - slope * t
    lo, hi = np.percentile(d, [0.5, 99.5])
    d = np.clip(d, lo, hi)  # a single burst must not decide the autocorrelation
    d = d - d.mean()
    var = float(d @ d)
    if var <= 1e-12 * (1.0 + float(y @ y)):
        return 0
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(d, nfft)
    acf = np.fft.irfft(spec * np.conj(spec), nfft)[: top + 2] / var
    acf *= n / (n - np.arange(acf.size))  # fewer pairs at long lags
    mid = acf[2 : top + 1]
    peaks = np.flatnonzero((mid > acf[1:top]) & (mid >= acf[3 : top + 2])) + 2
    if peaks.size == 0:
        return 0
    height = acf[peaks]
    prominence = height - np.minimum.accumulate(acf[1:])[peaks - 1]
    # a calendar cycle with a clear (if modest) peak of its own is the period
    clear = (height >= CALENDAR_HEIGHT) & (prominence >= CALENDAR_HEIGHT)
    calendar = [
        (acf[q], c)
        for c in natural
        if 2 * c <= n
        for q in peaks[clear & (np.abs(peaks - c) <= max(1, round(REFINE * c)))]
    ]
    if calendar:
        return max(calendar)[1]
    good = (height >= min_height) & (prominence >= min_height)
    if not good.any():
        return 0
    peaks = peaks[good]
    lag = int(peaks[np.argmax(acf[peaks] >= 0.6 * acf[peaks].max())])

    def misfit(p: int) -> float:
        return float(np.mean(np.abs(d[p:] - d[:-p])))

    span = max(1, int(round(REFINE * lag)))
    for cycle in natural:
        if abs(lag - cycle) <= span and 2 * cycle <= n:
            return cycle
    return min((p for p in range(lag - span, lag + span + 1) if p >= 2 and 2 * p <= n), key=misfit, default=0)


def phase_profile(y: np.ndarray, period: int, end: int) -> np.ndarray:
    """Seasonal profile indexed by ``t % period`` of the history ``y`` that ends at step ``end``."""
    m = y.size
    trend = median_filter(y, size=period | 1, mode="nearest")
    r = y - trend
    phases = (np.arange(end - m, end)) % period
    prof = np.zeros(period)
    for ph in range(period):
        sel = r[phases == ph]
        if sel.size:
            prof[ph] = np.median(sel)
    return prof - np.median(prof)


def seasonal_gain(y: np.ndarray, period: int) -> float:
    """Share of the held-out error a seasonal profile removes: the profile of all but the last
    quarter (or cycle) of the history, at least two cycles, predicts the rest's deviations from
    the rolling median; 1 is a perfect prediction, 0 no better than none (a weak cycle in noisy
    data, or too little history to tell), below 0 worse."""
    m = y.size
    hold = m - max(2 * period, m - max(period, m // 4))  # at least two cycles to learn from
    if hold < max(2, period // 2):
        return 0.0
    trend = median_filter(y, size=period | 1, mode="nearest")
    r = y - trend
    prof = phase_profile(y[: m - hold], period, m - hold)
    test = r[m - hold :]
    flat = float(np.mean(np.abs(test - np.median(r[: m - hold]))))
    if flat <= 0:
        return 0.0
    seasonal = float(np.mean(np.abs(test - prof[np.arange(m - hold, m) % period])))
    return 1.0 - seasonal / flat
