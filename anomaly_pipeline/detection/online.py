"""The online detector: every point judged from the points before it, by one small robust model.

This is the one algorithm behind every verdict: the pipeline's hourly ``tweet_anomalies``, the CLI's
``detect --mode stream``, the library's stream mode and the API's ``last/detect``.

Model (every quantity at point t is a median or quantile over a trailing span that ends at t - 1,
but the sustained shift's median, which takes the point in; spans are in hours of the series'
clock, so 5-minute and hourly series are judged alike)
----------------------------------------------------------------------------------------------------
* **Noise model by kind.** Counts (non-negative integers) are judged on ``sqrt(x + 3/8)``
  (Anscombe's transform), where Poisson noise has a standard deviation of 0.5 at any level, down to
  counts near zero (the noise floor: sparse counts do not alarm on every 1 after a run of 0s).
  Other non-negative series (rates, latencies, averages) are judged on ``x ** growth_power`` where
  their spread grows with their level (over the last ``tail_hours``, the correlation between the
  expected value and the absolute error exceeds ``growth_correlation``), as they are elsewhere:
  a crash rate's noise grows with the rate, a latency's spikes do not. Series with negative values
  are judged as they are. All but counts get a robust scale.
* **Expected value.** Two predictors compete:

  - *level*: the median of the last ``level_hours``;
  - *seasonal*, for each calendar cycle P (a day, a week) with at least ``MIN_CYCLES`` past cycles:
    the median of the values at t - P, ..., t - cycles*P.

  Each predictor's typical error is its median absolute residual over the last ``scale_hours``;
  for series other than counts, never below ``mean_error_share`` of its mean absolute residual
  there (the median collapses to 0 when most residuals are exactly 0, as in a latency that is
  mostly 0 with sporadic values; counts have the Poisson floor instead, and their spikes would
  inflate a mean). A
  seasonal predictor is used only where its error is at least ``season_gain`` below the level
  predictor's: a daily or weekly profile where it predicts, not where it merely exists.
* **Scale.** ``1.4826 x`` the chosen predictor's typical error (a robust sigma), never below the
  noise floor; residuals in these units are the point's *surprise*.
* **Calibrated threshold.** The alarm threshold is the surprise exceeded with probability
  ``alpha(sensitivity)`` (:func:`false_alarm_rate`): an exponential tail fitted to the last
  ``tail_hours`` of surprises (peaks over threshold, from their 90% and 95% quantiles), never below
  the Gaussian quantile and at most ``tail_cap`` times it (a series whose anomalies fill more than
  a few percent of the window must not teach the detector that they are normal). Until
  ``MIN_TAIL_POINTS`` surprises fit the tail (4 to 5 days of data), the threshold is
  ``early_tail`` times the Gaussian quantile: residuals of real data are heavier-tailed than
  Gaussian, and a new series must not alarm on its first days' ordinary swings.
* **A sustained shift.** A shift too small for any one point, held for ``shift_hours``, is judged
  on the median of the span's surprises (signed, the point's own included), against its own
  threshold calibrated the same way (an exponential tail fitted to the medians of the last
  ``tail_hours``, from the Gaussian quantile of such a median up to ``tail_cap`` times it); it is
  off until that tail is fitted, since medians of neighbouring points are correlated and have no
  Gaussian rule to fall back on, and where the span has a gap. On 5-minute data (a median of 24
  points) a rise that sits 1.5 sigmas high for hours alarms once and a blip does not move the
  median; on hourly data the span is 2 points, their mean, so it takes a rise of at least about
  2.6 sigmas held for 2 hours.
* **Budget and severity.** ``sensitivity`` sets ``alpha``, the false-alarm probability of each of
  the two tests (a point; a sustained shift): together at most twice it, and measured at about
  alpha or under on clean series (``bench/bench_false_alarms.py``). ``severity``
  (``1 - log(alpha) / log(p)`` with p the point's tail probability, or the sustained shift's
  where that test fired and is more surprising) ranks anomalies by surprise.
* **The band is the model's.** ``expected +- width`` (mapped back to the value's scale), where the
  width is ``threshold x scale``, or less where the last ``shift_hours`` sit so far to one side
  that a smaller step there ends a sustained shift: the range of values that would not have been
  an exceedance. Every anomaly lies outside it.
* **The daily pattern is no news.** A point beyond the threshold is not an anomaly when on at
  least ``precedent_days`` of the last ``cycles`` days a value at least as extreme (as high for a
  rise, as low for a drop) came within ``precedent_hours`` of the same time of day: a spike that
  comes every day at a drifting time, which the same-hour median does not predict.
* **One alarm per event.** An event is a run of exceedances with less than ``quiet_hours`` between
  them: it alarms at its first exceedance, and again only where its surprise grows ``regrowth``
  times beyond every point of the last ``quiet_hours``. A level shift alarms, the medians follow it
  within about ``level_hours / 2``, and it is the new normal. Gaps (NaN) are left out and get no
  verdict.

Finite memory
-------------
A verdict depends only on the last :func:`memory_points` values, so judging hour H alone (with that
much history), in a backfill of any range, or again later gives the same answer, and a long series
is judged in one vectorised pass, not refitted per point.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d
from scipy.special import log_ndtr, ndtri

COUNTS, NON_NEGATIVE, REAL = "counts", "non-negative", "real"
KINDS = (COUNTS, NON_NEGATIVE, REAL)
MIN_CYCLES = 2  # a seasonal predictor needs this many past cycles
MIN_SCALE_POINTS = 24  # no verdict before this many residuals give a noise scale (a day of hours)
NON_SEASONAL_WINDOW = 49
API_SUGGESTED_CYCLES = 4
MIN_TAIL_POINTS = 100  # the empirical tail is used once this many residuals are known
POISSON_SQRT_SIGMA = 0.5  # sd of sqrt(Poisson + 3/8) at any level (Anscombe's variance stabilisation)
ANSCOMBE_SHIFT = 0.375  # ...whose 3/8 keeps that sd (and a Gaussian tail) down to counts near 0
RELATIVE_FLOOR = 0.01  # scale floor for other series, as a share of the typical |level|
DAY_SECONDS, WEEK_SECONDS = 86400, 7 * 86400
ROBUST_SIGMA = 1.4826  # MAD -> sigma for Gaussian noise
MEDIAN_SIGMA = 1.2533  # the median of m Gaussian points spreads about this / sqrt(m) (m large)
MAX_WINDOW_SAMPLES = 672  # a trailing window is read at most this many points (evenly spaced)
_CHUNK_ROWS = 4096  # rolling medians are computed this many rows at a time (bounded memory)


@dataclass(frozen=True)
class OnlineSettings:
    """The detector's settings; each has one meaning (see the module docstring). Windows are in
    hours of the series' clock, so a 5-minute and an hourly series are judged alike."""

    level_hours: float = 16.0  # the level is the median of this trailing span
    scale_hours: float = 168.0  # the noise scale is the median absolute error over this span
    tail_hours: float = 672.0  # the threshold is calibrated on the residual tail of this span
    quiet_hours: float = 6.0  # an event ends after this span without an exceedance
    regrowth: float = 3.0  # ...and alarms again within it only when its surprise grows this many times
    shift_hours: float = 2.0  # a shift is also judged on the median surprise of this trailing span (0: off)
    tail_cap: float = 5.0  # the fitted tail raises the threshold to at most this many Gaussian ones
    early_tail: float = 1.5  # ...and is this many of them until the tail is fitted (a new series)
    mean_error_share: float = 0.5  # a typical error is at least this share of the mean |error| (not counts)
    growth_power: float = 0.7  # non-negative series (not counts) are judged on x ** this...
    growth_correlation: float = 0.1  # ...where their level and |error| correlate above this
    cycles: int = 7  # a seasonal predictor takes the median of this many past cycles
    season_gain: float = 0.1  # ...and is used only where it removes this share of the error
    precedent_days: int = 2  # a point is the daily pattern if this many of the last `cycles` days...
    precedent_hours: float = 3.0  # ...went as far within this span of its time of day (0 days: off)
    false_alarm_rate_95: float = 3e-3  # false-alarm probability per hour of data at sensitivity 95
    step_seconds: float = 3600.0  # the series' sampling step
    periods: tuple[int, ...] = field(default=())  # calendar cycles in points (a day, a week)

    def points(self, hours: float) -> int:
        """A span of hours in points of this series (at least one)."""
        return max(1, int(round(hours * 3600.0 / self.step_seconds)))

    def for_step(self, step_seconds: float | None, period: int | None = None) -> "OnlineSettings":
        """Settings for a series sampled every ``step_seconds`` (None: unknown, one point an hour):
        ``period`` if given, else its daily and weekly cycles in points, as seasonal cycles."""
        step = float(step_seconds) if step_seconds and step_seconds > 0 else 3600.0
        if period:
            periods: tuple[int, ...] = (int(period),) if int(period) >= 2 else ()
        elif step_seconds:
            cycles = (DAY_SECONDS / step, WEEK_SECONDS / step)
            periods = tuple(int(round(c)) for c in cycles if c >= 2 and abs(c - round(c)) < 1e-9)
        else:
            periods = ()
        return replace(self, step_seconds=step, periods=periods)


DEFAULT_SETTINGS = OnlineSettings()


def false_alarm_rate(sensitivity: float, rate_95: float = DEFAULT_SETTINGS.false_alarm_rate_95, step_seconds: float = 3600.0) -> float:
    """Per-point false-alarm probability budgeted at ``sensitivity`` (0..99).

    The budget is per hour of the series' clock, so a 5-minute series raises no more false alarms
    a day than an hourly one: ``rate_95 * 10 ** ((s - 95) / 10)`` an hour (ten times more per 10
    points of sensitivity), spread over the points of an hour, capped at 0.5 a point.
    """
    per_hour = float(rate_95) * 10.0 ** ((float(sensitivity) - 95.0) / 10.0)
    return min(0.5, per_hour * float(step_seconds) / 3600.0)


def threshold(sensitivity: float, rate_95: float = DEFAULT_SETTINGS.false_alarm_rate_95, step_seconds: float = 3600.0) -> float:
    """Robust sigmas a point must leave the expected value by: the two-sided Gaussian quantile."""
    return float(-ndtri(false_alarm_rate(sensitivity, rate_95, step_seconds) / 2.0))


def memory_points(settings: OnlineSettings = DEFAULT_SETTINGS) -> int:
    """How many points (the judged one included) a verdict depends on."""
    seasonal = max(settings.periods, default=0) * settings.cycles
    spans = (settings.level_hours, settings.scale_hours, settings.tail_hours, settings.quiet_hours)
    shift = 2 * settings.points(settings.shift_hours) if settings.shift_hours > 0 else 0  # the span and its tail's lag
    return seasonal + sum(settings.points(h) for h in spans) + shift + 1


def suggested_window(period: int) -> int:
    """The API's ``suggestedWindow`` for the seasonal cycle in use: the retired API's rule,
    ``4 x period + 1`` points, or 49 without a cycle. The online detector settles its noise scale,
    tail and weekly profile over a longer history, up to :func:`memory_points`."""
    return API_SUGGESTED_CYCLES * period + 1 if period >= 2 else NON_SEASONAL_WINDOW


def infer_kind(values: np.ndarray) -> str:
    """``counts`` (the values present are non-negative integers), ``non-negative`` (other values
    none of which is negative) or ``real``."""
    present = values[np.isfinite(values)]
    if present.size == 0 or present.min() < 0:
        return REAL
    return COUNTS if bool(np.all(present == np.round(present))) else NON_NEGATIVE


@dataclass(frozen=True)
class OnlineResult:
    """Per point: expected value, band, verdict and surprise (NaN/False where not judged)."""

    expected: np.ndarray
    upper_margin: np.ndarray
    lower_margin: np.ndarray
    is_anomaly: np.ndarray
    is_positive: np.ndarray
    is_negative: np.ndarray
    severity: np.ndarray
    surprise: np.ndarray  # |residual| in robust sigmas
    judged: np.ndarray  # a verdict was possible (value present, enough history)
    period: np.ndarray  # the seasonal cycle each point's expected value used (0 = none)

    @property
    def last_period(self) -> int:
        """The seasonal cycle in use at the last judged point (0 = none)."""
        judged = np.flatnonzero(self.judged)
        return int(self.period[judged[-1]]) if judged.size else 0


class _Scale:
    """The working scale of a series kind: counts on ``sqrt(x + 3/8)`` (Poisson noise 0.5 there,
    the floor), other series on ``x ** power`` (1: as they are; floor: a small share of the level)."""

    def __init__(self, kind: str, power: float = 1.0):
        self.sqrt = kind == COUNTS
        self.power = float(power)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.sqrt:
            return np.sqrt(np.maximum(x, 0.0) + ANSCOMBE_SHIFT)
        return np.power(np.maximum(x, 0.0), self.power) if self.power != 1.0 else x

    def inverse(self, z: np.ndarray) -> np.ndarray:
        if self.sqrt:
            return np.maximum(np.square(np.maximum(z, 0.0)) - ANSCOMBE_SHIFT, 0.0)
        return np.power(np.maximum(z, 0.0), 1.0 / self.power) if self.power != 1.0 else z

    def floor(self, level: np.ndarray) -> np.ndarray:
        if self.sqrt:
            return np.full_like(level, POISSON_SQRT_SIGMA)
        return RELATIVE_FLOOR * np.abs(level) + 1e-12


def _shift(a: np.ndarray, k: int) -> np.ndarray:
    """``out[t] = a[t - k]`` (NaN before the start)."""
    out = np.full_like(a, np.nan)
    if k < a.size:
        out[k:] = a[: a.size - k]
    return out


def _trailing_windows(a: np.ndarray, width: int) -> np.ndarray:
    """Row t: ``a[t - width : t]`` (NaN before the start), every k-th point of it when the span is
    longer than ``MAX_WINDOW_SAMPLES``, so that week-long spans of minute data stay cheap."""
    n = a.size
    stride = max(1, -(-width // MAX_WINDOW_SAMPLES))
    padded = np.concatenate([np.full(width, np.nan), a])
    return np.lib.stride_tricks.sliding_window_view(padded, width)[:n, ::stride]


# numpy's nanmedian / nanquantile go through masked arrays or one row at a time, 5-25 times slower
# on these windows than sorting each row once (NaN sorts last) and indexing its present values;
# the helpers below give the same numbers bit for bit (a test compares them with numpy's).


def _sorted_present(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row sorted (NaN last), how many values it holds, and the row numbers."""
    return np.sort(rows, axis=1), np.isfinite(rows).sum(axis=1), np.arange(rows.shape[0])


def _row_median(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nanmedian(rows, axis=1)`` (NaN for a row without a value), and each row's count."""
    ordered, count, row = _sorted_present(rows)
    last = max(rows.shape[1] - 1, 0)
    low = ordered[row, np.clip((count - 1) // 2, 0, last)]
    high = ordered[row, np.clip(count // 2, 0, last)]
    return np.where(count == 0, np.nan, np.where(count % 2 == 1, low, (low + high) / 2)), count


def _row_quantiles(rows: np.ndarray, quantiles: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``np.nanquantile(rows, quantiles, axis=1)`` (numpy's interpolation and rounding), and counts."""
    ordered, count, row = _sorted_present(rows)
    last = np.maximum(count - 1, 0)
    out = np.empty((len(quantiles), rows.shape[0]))
    for j, q in enumerate(quantiles):
        position = (count - 1) * q
        below = np.floor(position)
        weight = position - below
        i = np.clip(below.astype(np.int64), 0, last)
        a, b = ordered[row, i], ordered[row, np.minimum(i + 1, last)]
        step = b - a
        value = np.where(weight >= 0.5, b - step * (1 - weight), a + step * weight)
        out[j] = np.where(count == 0, np.nan, value)
    return out, count


def _trailing_median(a: np.ndarray, width: int) -> np.ndarray:
    """``out[t]`` = median of the values present in ``a[t - width : t]`` (NaN if none)."""
    windows = _trailing_windows(a, width)
    out = np.empty(a.size)
    for lo in range(0, a.size, _CHUNK_ROWS):
        out[lo : lo + _CHUNK_ROWS] = _row_median(windows[lo : lo + _CHUNK_ROWS])[0]
    return out


def _count_present(a: np.ndarray, width: int) -> np.ndarray:
    """``out[t]`` = how many values are present in ``a[t - width : t]``."""
    present = np.concatenate([[0], np.cumsum(np.isfinite(a))])
    t = np.arange(a.size)
    return present[t] - present[np.maximum(t - width, 0)]


TAIL_QUANTILES = (0.9, 0.95)  # the tail of |residual| above the first is exponential, fitted on both


def _tail_threshold(r: np.ndarray, width: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per point, an exponential tail fitted to the trailing ``width`` standardised residuals
    ``|r|``: its base ``u`` (the 90% quantile) and scale ``beta`` (from the 90% and 95% quantiles,
    ``beta = (q95 - q90) / ln 2``), so that ``P(|r| > u + x) = 0.1 exp(-x / beta)`` (peaks over
    threshold). Quantiles are not moved by anomalies filling less than 5% of the window. NaN/0 while fewer than
    MIN_TAIL_POINTS residuals are known, and before ``start`` (not needed)."""
    windows = _trailing_windows(np.abs(r), width)
    n = r.size
    q = np.full((2, n), np.nan)
    known = np.zeros(n, dtype=np.int64)
    for lo in range(min(start, n), n, _CHUNK_ROWS):
        rows = windows[lo : lo + _CHUNK_ROWS]
        q[:, lo : lo + _CHUNK_ROWS], known[lo : lo + _CHUNK_ROWS] = _row_quantiles(rows, TAIL_QUANTILES)
    u = q[0]
    beta = (q[1] - q[0]) / math.log((1.0 - TAIL_QUANTILES[0]) / (1.0 - TAIL_QUANTILES[1]))
    few = known < MIN_TAIL_POINTS
    u[few] = np.nan
    return u, np.where(np.isfinite(beta) & ~few, beta, 0.0)


def _tail_quantile(u: np.ndarray, beta: np.ndarray, alpha: float) -> np.ndarray:
    """The value the fitted tail (``_tail_threshold``) exceeds with probability ``alpha``."""
    return u + beta * math.log((1.0 - TAIL_QUANTILES[0]) / alpha)


def _seasonal_median(z: np.ndarray, period: int, cycles: int) -> np.ndarray:
    """Median of ``z[t - period], ..., z[t - cycles * period]`` (NaN with fewer than MIN_CYCLES)."""
    stack = np.stack([_shift(z, c * period) for c in range(1, cycles + 1)], axis=1)
    med, count = _row_median(stack)
    med[count < MIN_CYCLES] = np.nan
    return med


@dataclass(frozen=True)
class _Predictor:
    period: int
    expected: np.ndarray  # on the working scale
    error: np.ndarray  # typical |residual| over the trailing scale window


def _predictors(z: np.ndarray, s: OnlineSettings, mean_share: float) -> list[_Predictor]:
    level_w, scale_w = s.points(s.level_hours), s.points(s.scale_hours)
    level = _trailing_median(z, level_w)
    out = [_Predictor(0, level, _typical_error(z - level, scale_w, mean_share))]
    for period in s.periods:
        if MIN_CYCLES * period >= z.size:
            continue
        expected = _seasonal_median(z, period, s.cycles)
        out.append(_Predictor(period, expected, _typical_error(z - expected, scale_w, mean_share)))
    return out


def _trailing_mean(a: np.ndarray, width: int) -> np.ndarray:
    """``out[t]`` = mean of the values present in ``a[t - width : t]`` (NaN if none)."""
    sums = np.concatenate([[0.0], np.cumsum(np.where(np.isfinite(a), a, 0.0))])
    t = np.arange(a.size)
    n = _count_present(a, width)
    return np.where(n > 0, (sums[t] - sums[np.maximum(t - width, 0)]) / np.maximum(n, 1), np.nan)


def _typical_error(residual: np.ndarray, width: int, mean_share: float) -> np.ndarray:
    """The median |residual| of the trailing ``width`` points, at least ``mean_share`` of their mean."""
    magnitude = np.abs(residual)
    return np.fmax(_trailing_median(magnitude, width), mean_share * _trailing_mean(magnitude, width))


def _choose(predictors: list[_Predictor], gain: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point: the level predictor, or the best seasonal one where it removes ``gain`` of the error."""
    base = predictors[0]
    expected, error = base.expected.copy(), base.error.copy()
    period = np.zeros(expected.size, dtype=np.int64)
    best = np.where(np.isfinite(error), error, np.inf)
    for p in predictors[1:]:
        better = np.isfinite(p.error) & np.isfinite(p.expected) & (p.error < (1.0 - gain) * best)
        # each seasonal predictor must beat the level one by the margin, and then the others
        if better.any():
            expected[better], error[better], period[better] = p.expected[better], p.error[better], p.period
            best = np.where(better, p.error, best)
    return expected, error, period


def _daily_precedent(x: np.ndarray, residual: np.ndarray, s: OnlineSettings) -> np.ndarray:
    """Points that are the daily pattern: on at least ``precedent_days`` of the last ``cycles``
    days a value at least as extreme (as high for a rise, as low for a drop) came within
    ``precedent_hours`` of the same time of day. A spike that comes every day at a drifting time
    is not predicted by the same-hour median, but it is no news. All False without a daily cycle."""
    day = int(round(DAY_SECONDS / s.step_seconds))
    if s.precedent_days <= 0 or day not in s.periods:
        return np.zeros(x.size, dtype=bool)
    reach = min(s.points(s.precedent_hours), (day - 1) // 2)  # stays in the past: t - day + reach < t
    present = np.isfinite(x)
    highs = maximum_filter1d(np.where(present, x, -np.inf), 2 * reach + 1, mode="constant", cval=-np.inf)
    lows = minimum_filter1d(np.where(present, x, np.inf), 2 * reach + 1, mode="constant", cval=np.inf)
    as_high = np.zeros(x.size, dtype=np.int64)
    as_low = np.zeros(x.size, dtype=np.int64)
    for days_back in range(1, s.cycles + 1):
        as_high += np.nan_to_num(_shift(highs, days_back * day), nan=-np.inf) >= x
        as_low += np.nan_to_num(_shift(lows, days_back * day), nan=np.inf) <= x
    precedents = np.where(residual > 0, as_high, as_low)
    return np.isfinite(residual) & (precedents >= s.precedent_days)


def _onsets(exceed: np.ndarray, surprise: np.ndarray, quiet: int, regrowth: float) -> np.ndarray:
    """The exceedances that alarm: the first of an event (no exceedance in the ``quiet`` points
    before it), and any ``regrowth`` times more surprising than every point of those ``quiet``."""
    if exceed.size == 0:
        return exceed
    previous = np.nanmax(_trailing_windows(np.where(np.isnan(surprise), 0.0, surprise), quiet), axis=1, initial=0.0)
    first = _count_present(np.where(exceed, 1.0, np.nan), quiet) == 0
    return exceed & (first | (surprise > regrowth * previous))


@dataclass(frozen=True)
class _Shift:
    """The sustained-shift test at each point, in robust sigmas: the bound beyond which the point,
    above (``rise``) or below (``drop``) the expected value, ends a sustained shift (inf: nowhere),
    and where the test fires, its tail probability (log; inf elsewhere)."""

    rise: np.ndarray
    drop: np.ndarray
    log_p: np.ndarray


def _median_with(previous: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each row of the values before a point (NaN: missing), the median of those values and the
    point's own ``v``, as a function of ``v``: ``a * clip(v, lo, hi) + b``. A median is the middle
    value (``a`` 1) or the mean of the two middle ones (``a`` 1/2, ``b`` half the fixed one), and
    moves with ``v`` only between ``v``'s neighbours in the order."""
    ordered, count, row = _sorted_present(previous)
    last = max(previous.shape[1] - 1, 0)

    def nth(i):  # the i-th smallest present value (from 0), -inf below the first, inf past the last
        value = ordered[row, np.clip(i, 0, last)]
        return np.where(i < 0, -np.inf, np.where(i >= count, np.inf, value))

    half = count // 2
    even_with_v = (count + 1) % 2 == 0  # then the median is the mean of the two middle values
    lo = nth(half - 1)
    hi = np.where(even_with_v, nth(half + 1), nth(half))
    a = np.where(even_with_v, 0.5, 1.0)
    b = np.where(even_with_v, 0.5 * nth(half), 0.0)
    return a, b, lo, hi


def _rise_bound(a, b, lo, hi, target: np.ndarray) -> np.ndarray:
    """The bound ``r >= 0`` such that, for ``v > 0``, ``a * clip(v, lo, hi) + b > target`` exactly
    when ``v > r`` (0: every positive ``v``; inf: none)."""
    w = (target - b) / a
    return np.maximum(np.where(hi <= w, np.inf, np.where(lo > w, 0.0, w)), 0.0)


def _sustained_shift(standard: np.ndarray, alpha: float, gaussian_k: float, s: OnlineSettings, start: int) -> _Shift:
    """A shift too small for any one point to alarm, held over the last ``shift_hours``: the median
    of the span's surprises (signed, the point's included) beyond its own calibrated threshold, an
    exponential tail fitted to the medians of the last ``tail_hours`` that end before the span,
    between the Gaussian quantile of such a median of independent points and ``tail_cap`` times
    it. Off until that tail is fitted (surprises of neighbouring points are correlated, so their
    medians spread wider than that quantile says and it cannot stand in for the tail), where the
    span has a gap (a median of the few points left would be a point test on a lower threshold),
    and where the span is one point."""
    n = standard.size
    span = s.points(s.shift_hours) if s.shift_hours > 0 else 1
    if span < 2 or n == 0:
        return _Shift(np.full(n, np.inf), np.full(n, np.inf), np.full(n, np.inf))
    windows = _trailing_windows(standard, span - 1)  # sorted a chunk of rows at a time (bounded memory)
    chunks = [_median_with(windows[first : first + _CHUNK_ROWS]) for first in range(0, n, _CHUNK_ROWS)]
    a, b, lo, hi = (np.concatenate(parts) for parts in zip(*chunks))
    whole = np.isfinite(standard) & (_count_present(standard, span - 1) == span - 1)
    median = np.where(whole, a * np.clip(standard, lo, hi) + b, np.nan)
    u, beta = _tail_threshold(_shift(median, span), s.points(s.tail_hours), start)
    floor = gaussian_k * MEDIAN_SIGMA / math.sqrt(span)  # were the surprises independent
    tested = whole & np.isfinite(u)
    k = np.where(tested, np.clip(_tail_quantile(u, beta, alpha), floor, s.tail_cap * floor), np.inf)
    rise = _rise_bound(a, b, lo, hi, k)
    # -(a * clip(v, lo, hi) + b) = a * clip(-v, -hi, -lo) - b: a drop is a rise of the negated values
    drop = _rise_bound(a, -b, -hi, -lo, k)
    fired = tested & (np.abs(median) > k) & (np.sign(median) == np.sign(standard))
    # the median's tail probability, as the point's (_judge): from the threshold in use, on the tail
    excess = np.where(fired, np.abs(median) - k, 0.0)
    log_p = math.log(alpha) - excess / np.where(beta > 0, beta, np.inf)  # no tail beyond it: alpha itself
    return _Shift(rise, drop, np.where(fired, log_p, np.inf))


def detect(
    values,
    *,
    sensitivity: float = 95,
    kind: str | None = None,
    settings: OnlineSettings = DEFAULT_SETTINGS,
    judge_from: int = 0,
) -> OnlineResult:
    """Judge the points of an evenly spaced series from the points before them (NaN = missing).

    Points before ``judge_from`` are only history: their expected value is computed, their
    threshold (the costly tail fit) and verdict are not (``judged`` False)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isinf(x).any():
        raise ValueError("the series holds an infinite value")
    kind = kind or infer_kind(x)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == NON_NEGATIVE and np.nanmin(x, initial=0.0) < 0:
        raise ValueError("kind 'non-negative' was given, but the series holds a negative value")
    judge = dict(sensitivity=sensitivity, settings=settings, judge_from=judge_from)
    if kind != NON_NEGATIVE:
        return _judge(x, kind, _Scale(kind), **judge)[0]
    # judged both ways; each point takes the power scale's verdict where the spread grows
    as_is, expected = _judge(x, kind, _Scale(kind), **judge)
    grows = _spread_grows_with_level(x, expected, settings, start=judge_from)
    if not grows.any():
        return as_is  # the power scale would not be used: skip its pass
    on_power, _ = _judge(x, kind, _Scale(kind, settings.growth_power), **judge)
    return OnlineResult(
        **{name: np.where(grows, getattr(on_power, name), getattr(as_is, name)) for name in _ARRAY_FIELDS}
    )


def _spread_grows_with_level(x: np.ndarray, expected: np.ndarray, s: OnlineSettings, start: int = 0) -> np.ndarray:
    """Per point: over the last ``tail_hours`` before it (at least MIN_TAIL_POINTS modelled
    points), the correlation between the expected value and the absolute error exceeds
    ``growth_correlation``. Each window's moments are taken about its own means (two passes), so
    the answer does not depend on where the series starts, and a level that does not move has
    no correlation. False before ``start`` (not judged)."""
    known = np.isfinite(x) & np.isfinite(expected)
    level = _trailing_windows(np.where(known, expected, np.nan), s.points(s.tail_hours))
    error = _trailing_windows(np.where(known, np.abs(x - expected), np.nan), s.points(s.tail_hours))
    grows = np.zeros(x.size, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # windows without a modelled point
        for lo in range(min(start, x.size), x.size, _CHUNK_ROWS):
            rows = slice(lo, lo + _CHUNK_ROWS)
            level_mean = np.nanmean(level[rows], axis=1, keepdims=True)
            error_mean = np.nanmean(error[rows], axis=1, keepdims=True)
            dl, de = level[rows] - level_mean, error[rows] - error_mean
            spread = np.sqrt(np.nansum(dl * dl, axis=1) * np.nansum(de * de, axis=1))
            covariance = np.nansum(dl * de, axis=1)
            count = np.isfinite(level[rows]).sum(axis=1)
            size = count * level_mean[:, 0] * error_mean[:, 0]  # levels of a non-negative series: >= 0
            tiny = ~(spread > 1e-9 * size)  # no spread beyond rounding (or no point): no correlation
            correlation = np.where(tiny, 0.0, covariance / np.where(tiny, 1.0, spread))
            enough = count >= MIN_TAIL_POINTS
            grows[rows] = enough & (correlation > s.growth_correlation)
    return grows


def _judge(
    x: np.ndarray, kind: str, scale_map: _Scale, *, sensitivity: float, settings: OnlineSettings, judge_from: int
) -> tuple[OnlineResult, np.ndarray]:
    """The verdicts on one working scale, and the expected value (in the value's units) of every
    point the model could judge, before ``judge_from`` too."""
    z = scale_map.forward(x)
    # counts have the Poisson floor; the mean-error floor is for other series (it would let a
    # count series' spikes inflate its scale)
    mean_share = 0.0 if kind == COUNTS else settings.mean_error_share
    expected, error, period = _choose(_predictors(z, settings, mean_share), settings.season_gain)
    sigma = np.maximum(ROBUST_SIGMA * error, scale_map.floor(expected))
    enough = _count_present(z, settings.points(settings.scale_hours)) >= MIN_SCALE_POINTS
    judged = np.isfinite(z) & np.isfinite(expected) & np.isfinite(sigma) & enough
    # the event rule looks back quiet_hours at exceedances, so thresholds start that much earlier
    thresholded = max(0, judge_from - settings.points(settings.quiet_hours))

    alpha = false_alarm_rate(sensitivity, settings.false_alarm_rate_95, settings.step_seconds)
    residual = np.where(judged, z - expected, np.nan)
    standard = residual / np.where(judged, sigma, 1.0)
    u, beta = _tail_threshold(_shift(standard, 1), settings.points(settings.tail_hours), thresholded)
    tail_k = _tail_quantile(u, beta, alpha)
    gaussian_k = threshold(sensitivity, settings.false_alarm_rate_95, settings.step_seconds)
    early_k = settings.early_tail * gaussian_k  # the threshold until the tail is fitted
    k = np.clip(np.where(np.isfinite(tail_k), tail_k, early_k), gaussian_k, settings.tail_cap * gaussian_k)
    surprise = np.where(judged, np.abs(standard), 0.0)
    # the band: how far a point may lie from the expected value, in robust sigmas, before it is an
    # exceedance, alone (k) or as the end of a sustained shift
    shift = _sustained_shift(standard, alpha, gaussian_k, settings, thresholded)
    rise_k, drop_k = np.minimum(k, shift.rise), np.minimum(k, shift.drop)
    exceed = judged & ((standard > rise_k) | (-standard > drop_k)) & (np.arange(x.size) >= thresholded)
    exceed &= ~_daily_precedent(x, residual, settings)
    anomaly = _onsets(exceed, surprise, settings.points(settings.quiet_hours), settings.regrowth)
    modelled = np.where(judged, scale_map.inverse(np.where(judged, expected, 0.0)), np.nan)
    judged &= np.arange(x.size) >= judge_from
    anomaly &= judged
    residual = np.where(judged, residual, 0.0)

    log_alpha = math.log(alpha)
    # the tail's probability, measured from the threshold in use (where the cap bound, from there);
    # before a tail is fitted (beta 0, the first days) the Gaussian tail alone ranks the point
    log_p = np.where(beta > 0, log_alpha - (surprise - k) / np.where(beta > 0, beta, 1.0), np.inf)
    log_p = np.minimum(log_p, math.log(2.0) + log_ndtr(-surprise))
    log_p = np.minimum(log_p, shift.log_p)
    severity = np.where(anomaly, 1.0 - log_alpha / np.minimum(log_p, log_alpha - 1e-12), 0.0)

    value_expected = np.where(judged, scale_map.inverse(np.where(judged, expected, 0.0)), np.nan)
    above, below = (np.where(judged, width * sigma, 0.0) for width in (rise_k, drop_k))
    upper = np.where(judged, scale_map.inverse(expected + above) - value_expected, np.nan)
    lower = np.where(judged, value_expected - scale_map.inverse(expected - below), np.nan)
    result = OnlineResult(
        expected=value_expected,
        upper_margin=upper,
        lower_margin=lower,
        is_anomaly=anomaly,
        is_positive=anomaly & (residual > 0),
        is_negative=anomaly & (residual < 0),
        severity=severity,
        surprise=surprise,
        judged=judged,
        period=period,
    )
    return result, modelled


def detect_recent(
    values,
    first: int,
    *,
    history: int,
    sensitivity: float = 95,
    kind: str | None = None,
    settings: OnlineSettings = DEFAULT_SETTINGS,
) -> OnlineResult:
    """Verdicts for the points from ``first`` on, each judged on the ``history`` points ending at it.

    When ``history`` covers the detector's memory (:func:`memory_points`), one pass over the series
    gives exactly these verdicts, and so does one pass over the points whose history reaches back
    to the series' start (their windows are prefixes; verdicts are causal). The points left, with a
    shorter history (the tutorial's 72 hours, say), are judged window by window. Either way the
    verdict of a point never depends on the range it was judged in.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    kind = kind or infer_kind(x)
    judge = dict(sensitivity=sensitivity, kind=kind, settings=settings)
    if history >= memory_points(settings):
        start = max(0, first - history + 1)
        return _slice(detect(x[start:], judge_from=first - start, **judge), first - start)
    prefix_end = min(x.size, history)  # points before it are judged on the whole prefix up to them
    parts = [_slice(detect(x[:prefix_end], judge_from=first, **judge), first)] if first < prefix_end else []
    parts += [
        _slice(detect(x[t - history + 1 : t + 1], judge_from=history - 1, **judge), -1)
        for t in range(max(first, prefix_end), x.size)
    ]
    return _concat(parts)


def _slice(result: OnlineResult, start: int) -> OnlineResult:
    return OnlineResult(**{name: getattr(result, name)[start:] for name in _ARRAY_FIELDS})


def _concat(parts: list[OnlineResult]) -> OnlineResult:
    if not parts:
        return _slice(detect(np.zeros(0)), 0)
    return OnlineResult(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAY_FIELDS})


_ARRAY_FIELDS = (
    "expected", "upper_margin", "lower_margin", "is_anomaly", "is_positive", "is_negative",
    "severity", "surprise", "judged", "period",
)  # fmt: skip


def as_series_result(result: OnlineResult):
    """The engine's ``SeriesResult`` (the API's per-point response): unjudged points get their own
    value as expected value and empty margins."""
    from anomaly_pipeline.detection.engine import SeriesResult

    judged = result.judged
    return SeriesResult(
        period=result.last_period,
        expected_values=np.where(judged, result.expected, np.nan),
        upper_margins=np.where(judged, result.upper_margin, 0.0),
        lower_margins=np.where(judged, result.lower_margin, 0.0),
        is_anomaly=result.is_anomaly,
        is_positive_anomaly=result.is_positive,
        is_negative_anomaly=result.is_negative,
        severity=result.severity,
    )
