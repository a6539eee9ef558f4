"""Parse and validate an Anomaly Detector request into the float series the engine works on.

The checks, their order and their error codes follow the retired API's contract (see
``errors.py`` for the table of codes). The main entry point is :func:`parse_request`; the smaller
helpers (:func:`check_point_count`, :func:`check_model_arguments`, :func:`fill_missing`, ...) are
shared with the in-process detector so both paths refuse and impute the same way.
"""

from __future__ import annotations

import calendar
import math
import reprlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from numbers import Real
from typing import Any, Callable, Optional, Sequence

import numpy as np

from anomaly_pipeline.detection import engine
from anomaly_pipeline.detection.errors import (
    BAD_ARGUMENT,
    INVALID_CUSTOM_INTERVAL,
    INVALID_GRANULARITY,
    INVALID_IMPUTE_FIXED_VALUE,
    INVALID_IMPUTE_MODE,
    INVALID_JSON_FORMAT,
    INVALID_MODEL_ARGUMENT,
    INVALID_SERIES,
    REQUIRED_GRANULARITY,
    REQUIRED_SERIES,
    DetectionError,
)

MIN_POINTS = 12
MAX_POINTS = 8640
# A request may leave grid slots empty, but the filled series may not grow past this many slots
# times the point limit (guards memory against e.g. two points years apart at microsecond steps).
MAX_SLOT_FACTOR = 2
MAX_MISSING_RATIO_SEASONAL = 0.5

KINDS = ("entire", "last", "changepoint")
VERSIONS = ("v1.0", "v1.1")

# Fixed-length steps; yearly and monthly steps are calendar months (see ``_calendar_positions``).
FIXED_STEPS: dict[str, timedelta] = {
    "weekly": timedelta(weeks=1),
    "daily": timedelta(days=1),
    "hourly": timedelta(hours=1),
    "minutely": timedelta(minutes=1),
    "secondly": timedelta(seconds=1),
    "microsecond": timedelta(microseconds=1),
}
CALENDAR_MONTHS: dict[str, int] = {"yearly": 12, "monthly": 1}
GRANULARITIES = ("yearly", "monthly", *FIXED_STEPS, "none")
_GRANULARITY_BY_LOWER = {g.lower(): g for g in GRANULARITIES}

_CALENDAR_CYCLES = (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(weeks=1))


def natural_periods(granularity: str, custom_interval: int = 1) -> tuple[int, ...]:
    """Calendar cycles (minute, hour, day, week; year for monthly data) in points of this
    granularity, e.g. hourly -> (24, 168). Human activity follows the calendar, and a few cycles
    of noisy data cannot tell 23 or 25 hours from a day: period detection prefers these."""
    interval = max(int(custom_interval or 1), 1)
    if granularity == "monthly":
        return (12 // interval,) if 12 % interval == 0 and 12 // interval >= 2 else ()
    if granularity not in FIXED_STEPS or granularity == "microsecond":
        return ()
    step = FIXED_STEPS[granularity] * interval
    return tuple(c // step for c in _CALENDAR_CYCLES if c % step == timedelta(0) and c // step >= 2)


IMPUTE_MODES = ("auto", "previous", "linear", "fixed", "zero", "notFill")
_IMPUTE_BY_LOWER = {m.lower(): m for m in IMPUTE_MODES}

DEFAULT_SENSITIVITY = 95
MAX_SENSITIVITY = 99  # sensitivity is an integer in 0..99 (the API's range)
DEFAULT_MAX_ANOMALY_RATIO = 0.25


@dataclass(frozen=True)
class DetectRequest:
    """A validated request.

    ``values`` is the evenly spaced series handed to the engine (grid slots the request left
    empty are filled per ``impute_mode``; NaN for ``notFill``); ``positions[i]`` is the index in
    ``values`` of the i-th point sent, so responses can be given point for point.
    """

    kind: str
    version: str
    timestamps: tuple[Optional[datetime], ...]
    input_values: np.ndarray
    values: np.ndarray
    positions: np.ndarray
    granularity: str
    custom_interval: int
    period: Optional[int]
    sensitivity: int
    max_anomaly_ratio: float
    impute_mode: str
    impute_fixed_value: Optional[float]
    stable_trend_window: Optional[int]
    threshold: Optional[float]


# --------------------------------------------------------------------------------------------
# small validators


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


# Values echoed in error messages are shortened: a JSON integer may have thousands of digits and a
# field may hold a whole nested document.
_ECHO = reprlib.Repr()
_ECHO.maxlong = _ECHO.maxstring = _ECHO.maxother = 40


def _show(value: Any) -> str:
    return _ECHO.repr(value)


def _finite_float(value: Any) -> Optional[float]:
    """``value`` as a finite float; None for non-numbers (bools included), NaN, infinities and
    integers beyond the float range (JSON integers may have any number of digits)."""
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _refusal(code: str, name: str, value: Any, expected: str) -> DetectionError:
    if isinstance(value, int) and not isinstance(value, bool):  # an integer beyond the float range
        return DetectionError(code, f"{name} is out of range: {_show(value)}.")
    return DetectionError(code, f"{name} must be {expected}, got {_show(value)}.")


def _as_int(value: Any, code: str, name: str) -> int:
    """An integer argument; integral floats (``95.0``) are accepted, bools and strings are not."""
    number = _finite_float(value)
    if number is not None and number.is_integer():
        return int(value)
    raise _refusal(code, name, value, "an integer")


def _as_float(value: Any, code: str, name: str) -> float:
    number = _finite_float(value)
    if number is not None:
        return number
    raise _refusal(code, name, value, "a finite number")


def check_point_count(count: int, max_points: Optional[int] = MAX_POINTS) -> None:
    """12 points at least, ``max_points`` at most (``None``: no upper bound)."""
    if count < MIN_POINTS:
        raise DetectionError(
            INVALID_SERIES, f"The series must have at least {MIN_POINTS} points, got {count}."
        )
    if max_points is not None and count > max_points:
        raise DetectionError(
            INVALID_SERIES, f"The series must have at most {max_points} points, got {count}."
        )


def check_model_arguments(
    sensitivity: Any = DEFAULT_SENSITIVITY,
    max_anomaly_ratio: Any = DEFAULT_MAX_ANOMALY_RATIO,
    period: Any = None,
) -> tuple[int, float, Optional[int]]:
    """Validate sensitivity (integer 0..99), maxAnomalyRatio (0 < r < 0.5) and period (>= 0)."""
    sens = _as_int(sensitivity, INVALID_MODEL_ARGUMENT, "sensitivity")
    if not 0 <= sens <= MAX_SENSITIVITY:
        raise DetectionError(
            INVALID_MODEL_ARGUMENT, f"sensitivity must be in 0..{MAX_SENSITIVITY}, got {_show(sens)}."
        )
    ratio = _as_float(max_anomaly_ratio, INVALID_MODEL_ARGUMENT, "maxAnomalyRatio")
    if not 0 < ratio < 0.5:
        raise DetectionError(
            INVALID_MODEL_ARGUMENT, f"maxAnomalyRatio must be in (0, 0.5), got {ratio}."
        )
    per = None if period is None else _as_int(period, INVALID_MODEL_ARGUMENT, "period")
    if per is not None and per < 0:
        raise DetectionError(INVALID_MODEL_ARGUMENT, f"period must be >= 0, got {_show(per)}.")
    return sens, ratio, per


def check_period_fits(period: Optional[int], count: int) -> None:
    """A given period needs at least 2 periods + 1 points."""
    if period is not None and period > 1 and count < 2 * period + 1:
        raise DetectionError(
            INVALID_MODEL_ARGUMENT,
            f"period {_show(period)} needs at least {_show(2 * period + 1)} points "
            f"(2 periods + 1), got {count}.",
        )


def _check_change_point_arguments(
    body: dict, count: int
) -> tuple[Optional[int], Optional[float]]:
    window = body.get("stableTrendWindow")
    if window is not None:
        window = _as_int(window, INVALID_MODEL_ARGUMENT, "stableTrendWindow")
        if not 3 <= window < count:
            raise DetectionError(
                INVALID_MODEL_ARGUMENT,
                f"stableTrendWindow must be in 3..{count - 1} for {count} points, "
                f"got {_show(window)}.",
            )
    threshold = body.get("threshold")
    if threshold is not None:
        threshold = _as_float(threshold, INVALID_MODEL_ARGUMENT, "threshold")
        if not 0 < threshold < 1:
            raise DetectionError(
                INVALID_MODEL_ARGUMENT, f"threshold must be in (0, 1), got {threshold}."
            )
    return window, threshold


def parse_granularity(value: Any, *, required: bool) -> str:
    """The canonical granularity name; ``none`` when absent and not required."""
    if value is None:
        if required:
            raise DetectionError(REQUIRED_GRANULARITY, "granularity is required.")
        return "none"
    canonical = _GRANULARITY_BY_LOWER.get(value.lower()) if isinstance(value, str) else None
    if canonical is None:
        raise DetectionError(
            INVALID_GRANULARITY,
            f"granularity must be one of {', '.join(GRANULARITIES)}; got {_show(value)}.",
        )
    return canonical


def parse_custom_interval(value: Any) -> int:
    if value is None:
        return 1
    interval = _as_int(value, INVALID_CUSTOM_INTERVAL, "customInterval")
    if interval < 1:
        raise DetectionError(
            INVALID_CUSTOM_INTERVAL,
            f"customInterval must be a positive integer, got {_show(interval)}.",
        )
    return interval


def parse_impute(mode: Any, fixed_value: Any) -> tuple[str, Optional[float]]:
    if mode is None:
        mode = "auto"
    canonical = _IMPUTE_BY_LOWER.get(mode.lower()) if isinstance(mode, str) else None
    if canonical is None:
        raise DetectionError(
            INVALID_IMPUTE_MODE,
            f"imputeMode must be one of {', '.join(IMPUTE_MODES)}; got {_show(mode)}.",
        )
    fixed = None
    if canonical == "fixed":
        fixed = _as_float(fixed_value, INVALID_IMPUTE_FIXED_VALUE, "imputeFixedValue")
    return canonical, fixed


def parse_timestamp(value: Any) -> datetime:
    """ISO-8601 string (or datetime) to an aware UTC datetime; naive values are taken as UTC."""
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise DetectionError(
                BAD_ARGUMENT, f"timestamp {_show(value)} is not ISO-8601."
            ) from None
    else:
        raise DetectionError(BAD_ARGUMENT, f"timestamp {_show(value)} is not an ISO-8601 string.")
    if ts.tzinfo is None:
        return ts.replace(tzinfo=timezone.utc)
    try:
        return ts.astimezone(timezone.utc)
    except OverflowError:
        raise DetectionError(BAD_ARGUMENT, f"timestamp {_show(value)} is out of range.") from None


def _parse_points(
    series: list, *, timestamps_required: bool
) -> tuple[list[Optional[datetime]], np.ndarray]:
    timestamps: list[Optional[datetime]] = []
    values = np.empty(len(series), dtype=np.float64)
    for i, point in enumerate(series):
        if not isinstance(point, dict):
            raise DetectionError(BAD_ARGUMENT, f"series[{i}] must be an object with a value.")
        value = point.get("value")
        if value is None:
            raise DetectionError(BAD_ARGUMENT, f"series[{i}].value is missing.")
        number = _finite_float(value)
        if number is None:
            raise _refusal(BAD_ARGUMENT, f"series[{i}].value", value, "a finite number")
        values[i] = number
        raw_ts = point.get("timestamp")
        if raw_ts is None:
            if timestamps_required:
                raise DetectionError(BAD_ARGUMENT, f"series[{i}].timestamp is missing.")
            timestamps.append(None)
        else:
            timestamps.append(parse_timestamp(raw_ts))
    return timestamps, values


def check_ascending(timestamps: Sequence[Optional[datetime]]) -> None:
    previous: Optional[datetime] = None
    for i, ts in enumerate(timestamps):
        if ts is None:
            continue
        if previous is not None and ts <= previous:
            problem = "duplicates" if ts == previous else "is earlier than"
            raise DetectionError(
                INVALID_SERIES,
                f"timestamps must be ascending without duplicates: series[{i}] ({ts.isoformat()}) "
                f"{problem} the timestamp before it.",
            )
        previous = ts


# --------------------------------------------------------------------------------------------
# grid


def add_months(ts: datetime, months: int) -> datetime:
    """Calendar arithmetic: the same day and time ``months`` later, clipped to the month's end."""
    month_index = ts.year * 12 + ts.month - 1 + months
    year, month = divmod(month_index, 12)
    day = min(ts.day, calendar.monthrange(year, month + 1)[1])
    return ts.replace(year=year, month=month + 1, day=day)


def _off_grid(i: int, ts: datetime, granularity: str, interval: int) -> DetectionError:
    return DetectionError(
        INVALID_SERIES,
        f"series[{i}] ({ts.isoformat()}) is not on the {granularity} grid with customInterval "
        f"{_show(interval)} that starts at the first timestamp.",
    )


def grid_positions(
    timestamps: Sequence[datetime], granularity: str, interval: int, max_slots: int
) -> np.ndarray:
    """Index of each (ascending) timestamp on the grid starting at the first one."""
    first = timestamps[0]
    span_limit = max_slots - 1
    positions = np.empty(len(timestamps), dtype=np.int64)
    if granularity in CALENDAR_MONTHS:
        step_months = CALENDAR_MONTHS[granularity] * interval
        for i, ts in enumerate(timestamps):
            months = (ts.year - first.year) * 12 + ts.month - first.month
            k, rest = divmod(months, step_months)
            if rest or add_months(first, k * step_months) != ts:
                raise _off_grid(i, ts, granularity, interval)
            positions[i] = k
    else:
        try:
            step = FIXED_STEPS[granularity] * interval
        except OverflowError:
            raise DetectionError(
                INVALID_CUSTOM_INTERVAL, f"customInterval {_show(interval)} is too large."
            ) from None
        for i, ts in enumerate(timestamps):
            k, rest = divmod(ts - first, step)
            if rest:
                raise _off_grid(i, ts, granularity, interval)
            positions[i] = k
    if positions[-1] > span_limit:
        raise DetectionError(
            INVALID_SERIES,
            f"the series spans {positions[-1] + 1} {granularity} slots with most of them missing; "
            f"at most {max_slots} are allowed.",
        )
    return positions


def infer_granularity(timestamps: Sequence[datetime]) -> tuple[str, int]:
    """Guess (granularity, customInterval) from ascending timestamps (used by the CLI).

    Calendar data (every point on the first point's day of the month and time) is monthly or
    yearly; otherwise the most common step, or the greatest common divisor of all the steps when
    some are not multiples of it, expressed in the largest unit dividing it.
    """
    stamps = [parse_timestamp(t) for t in timestamps]
    if len(stamps) < 2:
        return "none", 1
    first = stamps[0]
    if first.day <= 28 and all(
        (t.day, t.timetz()) == (first.day, first.timetz()) for t in stamps
    ):
        months = [(t.year - first.year) * 12 + t.month - first.month for t in stamps]
        step = 0
        for a, b in zip(months, months[1:]):
            step = math.gcd(step, b - a)
        if step:
            return ("yearly", step // 12) if step % 12 == 0 else ("monthly", step)
    unit = timedelta(microseconds=1)
    diffs = [(b - a) // unit for a, b in zip(stamps, stamps[1:])]
    step = Counter(diffs).most_common(1)[0][0]
    if step <= 0 or any(d % step for d in diffs):
        step = 0
        for d in diffs:
            step = math.gcd(step, d)
    if step <= 0:
        return "none", 1
    return fixed_granularity(step * unit)


def fixed_granularity(step: timedelta) -> tuple[str, int]:
    """A positive step as (granularity, customInterval) in the largest unit dividing it."""
    for name in ("weekly", "daily", "hourly", "minutely", "secondly", "microsecond"):
        interval, rest = divmod(step, FIXED_STEPS[name])
        if not rest:
            return name, interval
    raise ValueError(f"step {step} is not a positive number of microseconds")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# missing slots


def _fill_previous(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    index = np.where(missing, 0, np.arange(len(values)))
    np.maximum.accumulate(index, out=index)
    filled = values[index]
    # leading gaps (no earlier value) take the first value present
    if np.isnan(filled[0]):
        first = values[~missing][0]
        filled[np.isnan(filled)] = first
    return filled


_FILLERS: dict[str, Callable[[np.ndarray, np.ndarray, Optional[float]], np.ndarray]] = {
    "auto": lambda v, _m, _f: engine._fill_gaps(v),
    "linear": lambda v, _m, _f: engine._fill_gaps(v),
    "previous": lambda v, m, _f: _fill_previous(v, m),
    "zero": lambda v, m, _f: np.where(m, 0.0, v),
    "fixed": lambda v, m, f: np.where(m, float(f if f is not None else 0.0), v),
    "notFill": lambda v, _m, _f: v,
}


def fill_missing(
    values: np.ndarray,
    *,
    impute_mode: str = "auto",
    impute_fixed_value: Optional[float] = None,
    period: Optional[int] = None,
) -> np.ndarray:
    """Fill the NaN slots of an evenly spaced series per ``impute_mode``.

    ``auto`` and ``linear`` interpolate linearly, ``previous`` carries the last value forward,
    ``zero``/``fixed`` put 0/``impute_fixed_value``; ``notFill`` leaves NaN for the engine.
    A seasonal series (``period`` > 1, or detected so when ``period`` is None) missing over half
    its slots is refused with InvalidSeries.
    """
    missing = np.isnan(values)
    missing_count = int(missing.sum())
    if missing_count == 0:
        return values
    if missing_count == len(values):
        raise DetectionError(INVALID_SERIES, "the series has no values.")
    if missing_count > MAX_MISSING_RATIO_SEASONAL * len(values):
        seasonal_period = period
        if seasonal_period is None:
            seasonal_period = engine.detect_period(engine._fill_gaps(values))
        if seasonal_period and seasonal_period > 1:
            raise DetectionError(
                INVALID_SERIES,
                f"{missing_count} of {len(values)} points are missing; a seasonal series "
                f"(period {seasonal_period}) may miss at most half of its points.",
            )
    return _FILLERS[impute_mode](values, missing, impute_fixed_value)


# --------------------------------------------------------------------------------------------
# request


def parse_request(
    body: Any,
    *,
    kind: str = "entire",
    version: str = "v1.1",
    max_points: Optional[int] = MAX_POINTS,
) -> DetectRequest:
    """Validate an API request body and build the engine's series.

    ``kind`` is entire, last or changepoint; ``version`` v1.0 or v1.1 (v1.0 requires a
    granularity, v1.1 defaults it to ``none``); ``max_points=None`` lifts the 8640-point limit
    (the CLI's stream mode). Raises :class:`DetectionError` with the contract's code.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}")
    if not isinstance(body, dict):
        raise DetectionError(INVALID_JSON_FORMAT, "the request body must be a JSON object.")
    series = body.get("series")
    if series is None:
        raise DetectionError(REQUIRED_SERIES, "series is required.")
    if not isinstance(series, list):
        raise DetectionError(INVALID_SERIES, "series must be a list of {timestamp, value} points.")
    count = len(series)
    check_point_count(count, max_points)

    granularity = parse_granularity(body.get("granularity"), required=version == "v1.0")
    interval = parse_custom_interval(body.get("customInterval"))
    if kind == "changepoint":
        _, _, period = check_model_arguments(period=body.get("period"))
        sensitivity, ratio = DEFAULT_SENSITIVITY, DEFAULT_MAX_ANOMALY_RATIO
        window, threshold = _check_change_point_arguments(body, count)
    else:
        sensitivity, ratio, period = check_model_arguments(
            body.get("sensitivity", DEFAULT_SENSITIVITY),
            body.get("maxAnomalyRatio", DEFAULT_MAX_ANOMALY_RATIO),
            body.get("period"),
        )
        window, threshold = None, None
    impute_mode, fixed = parse_impute(body.get("imputeMode"), body.get("imputeFixedValue"))

    timestamps, input_values = _parse_points(series, timestamps_required=granularity != "none")
    check_ascending(timestamps)
    check_period_fits(period, count)

    if granularity == "none":
        positions = np.arange(count)
        values = input_values
    else:
        slot_limit = MAX_SLOT_FACTOR * (max_points or count)
        positions = grid_positions(timestamps, granularity, interval, slot_limit)
        if positions[-1] + 1 == count:
            values = input_values
        else:
            grid = np.full(int(positions[-1]) + 1, np.nan)
            grid[positions] = input_values
            values = fill_missing(
                grid, impute_mode=impute_mode, impute_fixed_value=fixed, period=period
            )

    return DetectRequest(
        kind=kind,
        version=version,
        timestamps=tuple(timestamps),
        input_values=input_values,
        values=values,
        positions=positions,
        granularity=granularity,
        custom_interval=interval,
        period=period,
        sensitivity=sensitivity,
        max_anomaly_ratio=ratio,
        impute_mode=impute_mode,
        impute_fixed_value=fixed,
        stable_trend_window=window,
        threshold=threshold,
    )
