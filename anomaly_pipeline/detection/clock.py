"""The clock stream mode judges a file's rows on.

A file whose rows keep one clock (every row a whole number of steps after the one before) is
judged on that clock: slots a file skips are gaps, left out of the detector's medians. Recorded
data has glitches the API refuses; stream mode judges such a file rather than refuse it:

* when the granularity was inferred from the file, rows off its usual clock (a sensor that
  reports about every 5 minutes with jitter, or a minute late now and then) are each judged at
  the nearest slot of that clock, so that real gaps stay gaps and the daily cycle stays in phase;
* where that cannot be done (a clock that steps back or repeats, as when an hour is logged twice;
  rows that would share a slot; gaps that would leave most of the grid empty, more than the API's
  ``MAX_SLOT_FACTOR`` slots a row), the rows are judged in file order, as evenly spaced.

The CLI's ``detect --mode stream`` and the quality benchmark both lay files out with
:func:`stream_clock`, so the benchmark's figures are the CLI's.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional, Sequence

from anomaly_pipeline.detection.errors import INVALID_CUSTOM_INTERVAL, INVALID_SERIES, DetectionError
from anomaly_pipeline.detection.request import FIXED_STEPS, MAX_SLOT_FACTOR, fixed_granularity

OWN_CLOCK, NEAREST_SLOT, FILE_ORDER = "own clock", "nearest slot", "file order"
# why a file's rows left their own clock, as the CLI's note says it ({clock}: the usual clock)
STEP_BACK, OFF_CLOCK, SHARED_SLOT, SPARSE = (
    "is not after the row before it",
    "is off the file's usual clock ({clock})",
    "would share a slot of the file's usual clock ({clock}) with the row before it",
    "leaves most of the grid of the file's usual clock ({clock}) empty",
)
MINUTE, SECOND = timedelta(minutes=1), timedelta(seconds=1)
DRIFT = 0.01  # a usual step within this share of whole minutes is taken as whole minutes


@dataclass(frozen=True)
class StreamClock:
    """Where stream mode judges a file's rows: ``timestamps`` (one per row, on one clock of
    ``granularity`` x ``custom_interval``), how they were laid out, and, unless the rows kept
    their own clock, the first row (index into the rows given) that made the layout differ and
    why (one of the reasons above)."""

    timestamps: list[datetime]
    granularity: str
    custom_interval: int
    layout: str = OWN_CLOCK
    first_odd_row: Optional[int] = None
    reason: str = ""

    @property
    def step(self) -> Optional[timedelta]:
        """One slot of the clock (None for calendar granularities and ``none``)."""
        step = FIXED_STEPS.get(self.granularity)
        return step * self.custom_interval if step else None


def stream_clock(
    stamps: Sequence[datetime], granularity: str, custom_interval: int, *, inferred: bool
) -> StreamClock:
    """Lay ``stamps`` (the parsed timestamps of the rows that have a value, in file order) out
    for stream mode. ``inferred``: the granularity was guessed from the stamps, so the rows' own
    usual step may replace it; a granularity the user gave is kept, and only a clock that steps
    back is judged in file order (the API refuses the rest with a clear error)."""
    stamps = list(stamps)
    own = StreamClock(stamps, granularity, custom_interval)
    if granularity not in FIXED_STEPS or len(stamps) < 2:
        return own
    if stamps[-1] < stamps[0]:
        raise DetectionError(
            INVALID_SERIES, "the rows run backwards in time (the last is before the first): sort them oldest first."
        )
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    back = next((i + 1 for i, d in enumerate(steps) if d <= timedelta(0)), None)
    if not inferred:
        if back is None:
            return own
        return _in_file_order(stamps, granularity, custom_interval, back, STEP_BACK)
    common = Counter(d for d in steps if d > timedelta(0)).most_common(1)
    if back is None and common and _keeps_clock(steps, common[0][0]):
        return StreamClock(stamps, *fixed_granularity(common[0][0]))
    usual = _usual_step(steps)
    granularity, custom_interval = fixed_granularity(usual)
    if back is not None:
        return _in_file_order(stamps, granularity, custom_interval, back, STEP_BACK)
    slots = [round((t - stamps[0]) / usual) for t in stamps]
    shared = next((i for i in range(1, len(slots)) if slots[i] <= slots[i - 1]), None)
    if shared is not None:
        return _in_file_order(stamps, granularity, custom_interval, shared, SHARED_SLOT)
    sparse = next((i for i, slot in enumerate(slots) if not _fits_grid(slot, len(slots))), None)
    if sparse is not None:
        return _in_file_order(stamps, granularity, custom_interval, sparse, SPARSE)
    on_clock = [stamps[0] + slot * usual for slot in slots]
    off = next((i for i, (t, c) in enumerate(zip(stamps, on_clock)) if t != c), None)
    if off is None:
        return StreamClock(stamps, granularity, custom_interval)
    return StreamClock(on_clock, granularity, custom_interval, NEAREST_SLOT, off, OFF_CLOCK)


def _keeps_clock(steps: list[timedelta], step: timedelta) -> bool:
    """Every step a whole number of ``step``, and the grid they span within the API's limit."""
    if any(d % step for d in steps):
        return False
    return _fits_grid(sum(d // step for d in steps), len(steps) + 1)


def _fits_grid(last_slot: int, rows: int) -> bool:
    """The API's limit: a series of ``rows`` points spans at most ``MAX_SLOT_FACTOR`` slots a point."""
    return last_slot + 1 <= MAX_SLOT_FACTOR * rows


def _usual_step(steps: list[timedelta]) -> timedelta:
    """The rows' usual step: the most common one where it is at least half of them, else their
    median; whole minutes where it is within 1% of them (a sensor whose clock drifts a second a
    report), else whole seconds; never zero."""
    forward = [d for d in steps if d > timedelta(0)] or [SECOND]
    step, count = Counter(forward).most_common(1)[0]
    if 2 * count < len(forward):
        step = statistics.median_low(forward)
    minutes = round(step / MINUTE) * MINUTE
    if minutes and abs(step - minutes) <= DRIFT * step:
        return minutes
    return max(SECOND, round(step / SECOND) * SECOND)


def _in_file_order(stamps: list[datetime], granularity: str, interval: int, row: int, reason: str) -> StreamClock:
    """The rows evenly spaced at the clock's step, in file order."""
    try:
        spacing = FIXED_STEPS[granularity] * interval
        even = [stamps[0] + i * spacing for i in range(len(stamps))]
    except OverflowError:
        raise DetectionError(
            INVALID_CUSTOM_INTERVAL, f"customInterval {interval} is too large for {len(stamps)} rows."
        ) from None
    return StreamClock(even, granularity, interval, FILE_ORDER, row, reason)


def describe_step(step: timedelta) -> str:
    """A step in words: ``5 minutes``, ``1 hour``, ``31 days``, ``301 seconds``."""
    granularity, count = fixed_granularity(step)
    unit = {"weekly": "week", "daily": "day", "hourly": "hour", "minutely": "minute",
            "secondly": "second", "microsecond": "microsecond"}[granularity]  # fmt: skip
    return f"{count} {unit}{'' if count == 1 else 's'}"
