"""NAB corpus loader and scorer, following NAB's ``sweeper.py`` (NAB v1.1) rule for rule.

Scoring of one file, for a boolean detection array ``det`` (one entry per row):
* rows in the probation period (first 15% of the rows, at most 750) are not scored;
* inside a window only the first detection counts (NAB keeps the best-scoring detection of a
  window, which is the earliest one): ``A_TP * sigma(x) / sigma(-1)`` with
  ``sigma(x) = 2 / (1 + exp(5 x)) - 1`` and ``x = -(right - i + 1) / width`` (-1 at the left
  edge, so a detection there earns exactly ``A_TP``; about 0 at the right edge); later
  detections in the same window are ignored (neither TP nor FP);
* a detection outside every window is a false positive: ``A_FP * sigma(x)`` (negative) with
  ``x = (i - right_prev) / (width_prev - 1)``, the distance past the previous window (any
  window, also one lying in the probation period) in that window's lengths, or ``-A_FP``
  when no window came before;
* a window without detection costs ``-A_FN``;
* a window lying wholly inside the probation period is not scored (no TP, no FN; it only
  happens on the hourly tweet-volume track, never in the 53 NAB files).
Normalised score over a set of files = ``100 * (raw - null) / (perfect - null)`` with sums over
the set; ``null`` never fires (``-A_FN`` per window) and ``perfect`` hits every window at its
left edge (``A_TP`` per window).
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


def shared_corpus_dir(variable: str, name: str) -> Path:
    """A corpus directory: env ``variable`` or ``../shared/<name>`` next to the repository root."""
    env = os.environ.get(variable)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / name


def default_nab_dir() -> Path:
    """``--nab-dir`` default: env ``NAB_DIR`` or ``../shared/nab``."""
    return shared_corpus_dir("NAB_DIR", "nab")


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


def score_file(
    det, windows, n: int | None = None, profile: str = "standard", probation: int | None = None
) -> FileScore:
    """Score a boolean detection array against inclusive ``(left, right)`` row windows.

    ``probation`` overrides NAB's probation length in rows (15% of the file, at most 750)."""
    a_tp, a_fp, a_fn = PROFILES[profile]
    max_tp = scaled_sigmoid(-1.0)
    det = np.asarray(det, dtype=bool)
    n = det.size if n is None else n
    start = probation_rows(n) if probation is None else probation
    windows = sorted((int(a), int(b)) for a, b in windows)
    # a window that ends inside the probation period is never scored, but it still counts as
    # "the previous window" of the false positives after it (as in NAB's sweeper)
    scored = [w[1] >= start for w in windows]
    raw = 0.0
    tp = fp = 0
    hit = [False] * len(windows)
    win_of = np.full(n, -1, dtype=np.int64)
    for w, (left, right) in enumerate(windows):
        win_of[left : right + 1] = w
    prev = -1  # index of the last window that ended before the current row
    wi = 0
    for i in np.flatnonzero(det):
        if i < start or i >= n:
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
                raw += a_tp * scaled_sigmoid(-(right - i + 1) / width) / max_tp
                tp += 1
            continue
        fp += 1
        if prev < 0:
            raw -= a_fp
        else:
            left, right = windows[prev]
            width = right - left + 1
            raw += a_fp * scaled_sigmoid((i - right) / max(width - 1, 1))
    fn = sum(1 for h, s in zip(hit, scored) if s and not h)
    raw -= a_fn * fn
    n_scored = sum(scored)
    null = -a_fn * n_scored
    perfect = a_tp * n_scored
    return FileScore(raw, null, perfect, tp, fp, fn)


def normalised(scores) -> float:
    scores = list(scores)
    raw = sum(s.raw for s in scores)
    null = sum(s.null for s in scores)
    perfect = sum(s.perfect for s in scores)
    if perfect == null:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


def hourly_file(f: NabFile) -> NabFile:
    """One file's 5-minute counts summed per clock hour; its label windows widened to whole hours.

    Only complete hours are kept (the partial first and last hours of a file would look like
    drops); a window covers every hour that holds one of its rows.
    """
    steps = np.diff(f.timestamps).astype(np.int64)
    per_hour = int(round(3600 / np.median(steps))) if steps.size else 1
    hours = f.timestamps.astype("datetime64[h]")
    uniq, idx, counts = np.unique(hours, return_inverse=True, return_counts=True)
    total = np.zeros(uniq.size)
    np.add.at(total, idx, np.nan_to_num(f.values, nan=0.0))
    keep = np.ones(uniq.size, dtype=bool)
    if counts[0] < per_hour:
        keep[0] = False
    if counts[-1] < per_hour:
        keep[-1] = False
    new_idx = np.cumsum(keep) - 1
    windows = []
    for left, right in f.windows:
        a, b = idx[left], idx[right]
        while a <= b and not keep[a]:
            a += 1
        while b >= a and not keep[b]:
            b -= 1
        if a <= b:
            windows.append((int(new_idx[a]), int(new_idx[b])))
    name = "hourly/" + f.name.split("/", 1)[-1]
    return NabFile(name, uniq[keep].astype("datetime64[s]"), total[keep], windows)


def hourly_tweet_volume(files: list[NabFile]) -> list[NabFile]:
    """The hourly tweet-volume track: each realTweets file summed per clock hour (one series
    per file, windows widened to whole hours), scored as one set."""
    return [hourly_file(f) for f in files if f.category == "realTweets"]
