"""Cloud Monitoring corpus loader and its event-level scorer (rules in ``../shared/cloud-monitoring``).

Hourly series of real service telemetry with expert point labels. Scoring of one series, for a
boolean alarm array (one entry per row, each decided from the past only):

* probation: the first 72 rows are not scored; an event starting in them is not counted;
* an event is a maximal run of rows labelled 1; its window is its rows plus the 3 rows after it
  (cut at the series' end), with no tolerance before its start;
* an event is detected when an alarm falls in its window; its delay is that first alarm's row
  minus the event's first row; an alarmed row outside every window is one false alarm; extra
  alarms inside a detected window count neither way.

Sums over the series give precision, recall, F1, false alarms per 1,000 scored rows and the median
delay. The NAB-like score scores the same windows with NAB's standard profile (``nab.score_file``
with a 72-row probation), normalised so that 0 never fires and 100 hits every event on its first row.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nab import FileScore, normalised, score_file, shared_corpus_dir

PROBATION_ROWS = 72
WINDOW_TAIL_ROWS = 3


def default_cloud_dir() -> Path:
    """Env ``CLOUD_MONITORING_DIR`` or ``../shared/cloud-monitoring``."""
    return shared_corpus_dir("CLOUD_MONITORING_DIR", "cloud-monitoring")


@dataclass
class CloudSeries:
    name: str  # "cloud/<key>"
    timestamps: np.ndarray  # datetime64[s]
    values: np.ndarray  # NaN = missing observation
    labels: np.ndarray  # bool per row

    @property
    def category(self) -> str:
        return "cloud-monitoring"

    @property
    def events(self) -> list[tuple[int, int]]:
        """Maximal runs of labelled rows, inclusive, that start after the probation."""
        padded = np.concatenate([[False], self.labels, [False]]).astype(np.int8)
        starts = np.flatnonzero(np.diff(padded) == 1)
        ends = np.flatnonzero(np.diff(padded) == -1) - 1
        return [(int(a), int(b)) for a, b in zip(starts, ends) if a >= PROBATION_ROWS]

    @property
    def windows(self) -> list[tuple[int, int]]:
        n = self.values.size
        return [(a, min(b + WINDOW_TAIL_ROWS, n - 1)) for a, b in self.events]


def load_cloud_corpus(cloud_dir: Path | str | None = None) -> list[CloudSeries]:
    cloud_dir = Path(cloud_dir) if cloud_dir else default_cloud_dir()
    series = []
    for path in sorted((cloud_dir / "series").glob("*__*.csv")):
        ts, vals, labels = [], [], []
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                ts.append(np.datetime64(row["timestamp"].rstrip("Z")[:19], "s"))
                vals.append(float(row["value"]) if row["value"].strip() else math.nan)
                labels.append(row["label"].strip() == "1")
        series.append(
            CloudSeries(
                "cloud/" + path.stem,
                np.array(ts, dtype="datetime64[s]"),
                np.array(vals, dtype=np.float64),
                np.array(labels, dtype=bool),
            )
        )
    return series


@dataclass
class EventScore:
    detected: int
    events: int
    false_alarms: int
    scored_rows: int
    delays: list[int]
    nab: FileScore


def score_series(alarms, series: CloudSeries) -> EventScore:
    alarms = np.asarray(alarms, dtype=bool)
    n = series.values.size
    windows = series.windows
    in_window = np.zeros(n, dtype=bool)
    for a, b in windows:
        in_window[a : b + 1] = True
    scored = np.arange(n) >= PROBATION_ROWS
    false_alarms = int(np.count_nonzero(alarms & scored & ~in_window))
    delays = []
    for (a, _), (_, wb) in zip(series.events, windows):
        hits = np.flatnonzero(alarms[a : wb + 1])
        if hits.size:
            delays.append(int(hits[0]))
    nab = score_file(alarms, windows, n, "standard", probation=PROBATION_ROWS)
    return EventScore(len(delays), len(windows), false_alarms, int(scored.sum()), delays, nab)


@dataclass
class EventSummary:
    precision: float
    recall: float
    f1: float
    false_alarms_per_1000: float
    median_delay: float
    nab_like: float
    detected: int
    events: int
    false_alarms: int


def summarise(scores: list[EventScore]) -> EventSummary:
    detected = sum(s.detected for s in scores)
    events = sum(s.events for s in scores)
    fa = sum(s.false_alarms for s in scores)
    rows = sum(s.scored_rows for s in scores)
    precision = detected / (detected + fa) if detected + fa else 0.0
    recall = detected / events if events else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    delays = [d for s in scores for d in s.delays]
    return EventSummary(
        precision,
        recall,
        f1,
        1000.0 * fa / rows if rows else 0.0,
        float(np.median(delays)) if delays else math.nan,
        normalised(s.nab for s in scores),
        detected,
        events,
        fa,
    )
