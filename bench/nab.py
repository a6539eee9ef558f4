"""NAB corpus loader and scorer (written from the published scoring rules, see the corpus README).

Scoring of one file, for a boolean detection array ``det`` (one entry per row):
* rows in the probation period (first 15% of the rows, at most 750) are not scored;
* inside a window only the first detection counts: ``A_TP * sigma(x)`` with
  ``sigma(x) = 2 / (1 + exp(5 x)) - 1`` and ``x = -(right - i + 1) / width`` (-1 at the left edge,
  about 0 at the right edge); later detections in the same window are ignored;
* a detection outside every window is a false positive: ``A_FP * sigma(x)`` (negative) with
  ``x = (i - right_prev) / width_prev`` the distance past the previous window in that window's
  lengths, or ``-A_FP`` when no window came before;
* a window without detection costs ``-A_FN``;
* a window lying wholly inside the probation period is left out (it cannot be scored; this
  only happens on the hourly tweet-volume track, never in the 53 NAB files).
Normalised score over a set of files = ``100 * (raw - null) / (perfect - null)`` with sums over the
set; ``null`` never fires (every window missed) and ``perfect`` hits every window at its left edge.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROFILES = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP": (1.0, 0.22, 1.0),
    "reward_low_FN": (1.0, 0.11, 2.0),
}


def default_nab_dir() -> Path:
    """``--nab-dir`` default: env ``NAB_DIR`` or ``../shared/nab`` next to the repository root."""
    env = os.environ.get("NAB_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "nab"


@dataclass
class NabFile:
    name: str  # "<category>/<file>.csv"
    timestamps: np.ndarray  # datetime64[s]
    values: np.ndarray
    windows: list[tuple[int, int]] = field(default_factory=list)  # inclusive row indices

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]


def _parse_ts(s: str) -> np.datetime64:
    return np.datetime64(s.strip().replace(" ", "T")[:19], "s")


def windows_to_rows(timestamps: np.ndarray, windows) -> list[tuple[int, int]]:
    rows = []
    for start, end in windows:
        a = int(np.searchsorted(timestamps, _parse_ts(start), side="left"))
        b = int(np.searchsorted(timestamps, _parse_ts(end), side="right")) - 1
        if b >= a:
            rows.append((a, b))
    return rows


def load_file(nab_dir: Path, name: str, windows) -> NabFile:
    ts, vals = [], []
    with open(Path(nab_dir) / "data" / name, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            ts.append(_parse_ts(row[0]))
            vals.append(float(row[1]) if row[1].strip() else math.nan)
    t = np.array(ts, dtype="datetime64[s]")
    return NabFile(name, t, np.array(vals, dtype=np.float64), windows_to_rows(t, windows))


def load_corpus(nab_dir: Path | str | None = None) -> list[NabFile]:
    nab_dir = Path(nab_dir) if nab_dir else default_nab_dir()
    with open(nab_dir / "labels" / "combined_windows.json") as fh:
        labels = json.load(fh)
    files = []
    for name in sorted(labels):
        if (nab_dir / "data" / name).exists():
            files.append(load_file(nab_dir, name, labels[name]))
    return files


def scaled_sigmoid(x: float) -> float:
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_rows(n: int) -> int:
    return min(int(math.floor(0.15 * n)), 750)


@dataclass
class FileScore:
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int


def score_file(det, windows, n: int | None = None, profile: str = "standard") -> FileScore:
    """Score a boolean detection array against inclusive ``(left, right)`` row windows."""
    a_tp, a_fp, a_fn = PROFILES[profile]
    det = np.asarray(det, dtype=bool)
    n = det.size if n is None else n
    start = probation_rows(n)
    # a window that ends inside the probation period can never be scored: leave it out
    windows = sorted(w for w in windows if w[1] >= start)
    raw = 0.0
    tp = fp = 0
    hit = [False] * len(windows)
    win_of = np.full(n, -1, dtype=np.int64)
    for w, (left, right) in enumerate(windows):
        win_of[left : right + 1] = w
    prev = -1  # index of the last window that ended before the current row
    wi = 0
    for i in np.flatnonzero(det):
        if i < start:
            continue
        while wi < len(windows) and windows[wi][1] < i:
            prev = wi
            wi += 1
        w = win_of[i]
        if w >= 0:
            if not hit[w]:
                hit[w] = True
                left, right = windows[w]
                width = right - left + 1
                raw += a_tp * scaled_sigmoid(-(right - i + 1) / width)
                tp += 1
            continue
        fp += 1
        if prev < 0:
            raw -= a_fp
        else:
            left, right = windows[prev]
            width = right - left + 1
            raw += a_fp * scaled_sigmoid((i - right) / width)
    fn = hit.count(False)
    raw -= a_fn * fn
    null = -a_fn * len(windows)
    perfect = a_tp * scaled_sigmoid(-1.0) * len(windows)
    return FileScore(raw, null, perfect, tp, fp, fn)


def normalised(scores) -> float:
    scores = list(scores)
    raw = sum(s.raw for s in scores)
    null = sum(s.null for s in scores)
    perfect = sum(s.perfect for s in scores)
    if perfect == null:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


def hourly_tweet_volume(files: list[NabFile]) -> NabFile:
    """The realTweets files summed per clock hour; label windows widened to whole hours."""
    tweets = [f for f in files if f.category == "realTweets"]
    hours_all = [f.timestamps.astype("datetime64[h]") for f in tweets]
    lo = min(h.min() for h in hours_all)
    hi = max(h.max() for h in hours_all)
    hours = np.arange(lo, hi + np.timedelta64(1, "h"), dtype="datetime64[h]")
    total = np.zeros(hours.size)
    seen = np.zeros(hours.size, dtype=bool)
    spans = []
    for f, h in zip(tweets, hours_all):
        idx = (h - lo).astype(np.int64)
        v = np.nan_to_num(f.values, nan=0.0)
        np.add.at(total, idx, v)
        seen[idx] = True
        for left, right in f.windows:
            spans.append((int(idx[left]), int(idx[right])))
    total[~seen] = np.nan
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return NabFile("hourly/tweet_volume", hours.astype("datetime64[s]"), total, merged)
