"""Familiar excursions for the stream detector: an alarm that looks like many past ones is muted.

An *event* is a run of alarm scores above ``event_level``.  Each event that crossed the alarm
threshold is remembered (the last ``memory`` of them) by its largest deviation from the level,
the working-scale value there, its side and its peak score.  A new alarm is familiar when at
least ``count`` remembered events on the same side, with a peak score at least
``min_score_share`` of the current event's, went about as far (a deviation between
``1 - tol`` and ``1 + span`` times the current one) or, with ``by_value``, reached the same value
(within ``tol`` of the current deviation).  A spike that keeps coming back to the same height,
like a daily job that drifts a few points from day to day, is normal; a new, larger or different
excursion still alarms.
"""

from __future__ import annotations

from collections import deque


class FamiliarExcursions:
    def __init__(
        self,
        *,
        count: int = 3,
        tol: float = 0.15,
        span: float = 0.25,
        min_score_share: float = 0.8,
        by_value: bool = True,
        memory: int = 256,
        event_level: float = 0.8,
    ):
        self.count = int(count)
        self.tol = float(tol)
        self.span = float(span)
        self.min_score_share = float(min_score_share)
        self.by_value = bool(by_value)
        self.event_level = float(event_level)
        # (value, deviation, side, peak score) of each remembered event
        self.past: deque[tuple[float, float, int, float]] = deque(maxlen=int(memory))
        self.in_event = False
        self.value = self.deviation = self.peak = 0.0
        self.alarming = False  # the event in progress crossed the alarm threshold

    def observe(self, score: float, value: float, deviation: float, threshold: float, remember: bool) -> None:
        """Follow the event in progress with this point's (smoothed) score; when an event that
        crossed ``threshold`` ends, remember it if ``remember`` (past the warm-up)."""
        if score > self.event_level:
            if not self.in_event or abs(deviation) > abs(self.deviation):
                self.value, self.deviation = value, deviation
            if not self.in_event:
                self.alarming = False
                self.peak = 0.0
            if score > self.peak:
                self.peak = score
            if score > threshold:
                self.alarming = True
            self.in_event = True
        elif self.in_event:
            self.in_event = False
            if remember and self.alarming:
                self.past.append((self.value, self.deviation, 1 if self.deviation > 0 else -1, self.peak))

    def is_familiar(self, value: float, deviation: float, score: float) -> bool:
        """Whether an alarm now (the event in progress, or this point alone) looks like at least
        ``count`` remembered events."""
        if self.in_event:
            value, deviation, score = self.value, self.deviation, self.peak
        side = 1 if deviation > 0 else -1
        size = abs(deviation)
        tol = self.tol * size
        low, high = size - tol, size + self.span * size
        min_peak = self.min_score_share * score
        matches = 0
        for past_value, past_deviation, past_side, past_peak in self.past:
            if past_side == side and past_peak >= min_peak and (
                low <= abs(past_deviation) <= high or (self.by_value and abs(past_value - value) <= tol)
            ):
                matches += 1
        return matches >= self.count
