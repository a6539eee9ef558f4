"""The clock stream mode judges a file's rows on.

A file whose rows keep one clock (every row a whole number of steps after the one before) is
judged on that clock: hours a file skips are gaps, left out of the detector's medians. Recorded
data has glitches the API refuses, and stream mode judges such a file row by row in file order,
as an evenly spaced series, rather than refuse it:

* timestamps that step back or repeat (an hour logged twice, a clock set back);
* when the granularity was inferred from the file: rows off its usual clock (sensors that report
  about every 5 minutes with jitter, which only a 1-minute grid would hold, mostly empty) or gaps
  that would leave most of the grid empty (more than the API's ``MAX_SLOT_FACTOR`` slots a row).
  The rows are then spaced at the file's most common step, its usual clock.

The CLI's ``detect --mode stream`` and the quality benchmark both lay files out with
:func:`stream_clock`, so the benchmark's figures are the CLI's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional, Sequence

from anomaly_pipeline.detection.request import FIXED_STEPS, MAX_SLOT_FACTOR, infer_granularity


@dataclass(frozen=True)
class StreamClock:
    """The timestamps the detector judges a file's rows at, and that clock's granularity."""

    timestamps: list[datetime]  # the file's own, or evenly spaced in file order
    granularity: str
    custom_interval: int
    note: Optional[str] = None  # why the rows were judged in file order (None: on their own clock)

    @property
    def step(self) -> Optional[timedelta]:
        """One slot of the clock (None for calendar granularities and ``none``)."""
        step = FIXED_STEPS.get(self.granularity)
        return step * self.custom_interval if step else None


def stream_clock(
    stamps: Sequence[datetime], granularity: str, custom_interval: int, *, inferred: bool
) -> StreamClock:
    """Lay ``stamps`` (the rows' parsed timestamps) out for stream mode; ``inferred``: the
    granularity was guessed from the stamps, not given by the user."""
    stamps = list(stamps)
    own = StreamClock(stamps, granularity, custom_interval)
    if granularity not in FIXED_STEPS or len(stamps) < 2:
        return own
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    forward = Counter(d for d in steps if d > timedelta(0))
    usual = forward.most_common(1)[0][0] if forward else None
    back = next((i + 1 for i, d in enumerate(steps) if d <= timedelta(0)), None)
    if back is not None:
        why = "is not after the row before it"
    elif inferred and usual and (odd := _first_off_clock(steps, usual)) is not None:
        back, why = odd, f"is off the file's usual clock of one row every {usual}"
    else:
        return own
    if inferred and usual:
        # an inferred granularity divides every step, jitter too: the rows' usual step is their clock
        granularity, custom_interval = infer_granularity([stamps[0], stamps[0] + usual])
    spacing = FIXED_STEPS[granularity] * custom_interval
    note = (
        f"row {back + 2} ({stamps[back]:%Y-%m-%d %H:%M:%S}) {why}: stream mode judged the rows in "
        "file order, as evenly spaced."
    )
    even = [stamps[0] + i * spacing for i in range(len(stamps))]
    return StreamClock(even, granularity, custom_interval, note)


def _first_off_clock(steps: list[timedelta], usual: timedelta) -> Optional[int]:
    """The first row that is not a whole number of ``usual`` steps after the row before it, or
    (when all are) the first row past which the grid of ``usual`` steps would be mostly empty;
    None when the rows keep the clock."""
    slot_limit = MAX_SLOT_FACTOR * (len(steps) + 1)
    slot = 0
    for i, d in enumerate(steps):
        if d % usual:
            return i + 1
        slot += d // usual
        if slot >= slot_limit:
            return i + 1
    return None
