"""Speed benchmark of the detection engine.

Prints stream-mode time over the largest NAB file, entire mode on 8,640 points and
detect_last_values on a 72-point hourly window (per call).

    .venv/bin/python bench/bench_detection_speed.py [--nab-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nab import default_nab_dir, load_corpus  # noqa: E402

from anomaly_pipeline.detection.engine import detect_entire_values, detect_last_values, detect_stream_values  # noqa: E402


def _best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def hourly_counts(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    lam = 120 * (1 + 0.6 * np.sin(2 * np.pi * t / 24)) * (1 + 0.2 * np.sin(2 * np.pi * t / 168))
    return rng.poisson(lam).astype(float)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nab-dir", type=Path, default=None, help="NAB corpus (default: $NAB_DIR or ../shared/nab)")
    args = ap.parse_args(argv)
    files = load_corpus(args.nab_dir or default_nab_dir())
    big = max(files, key=lambda f: f.values.size)
    tweets = [f for f in files if f.category == "realTweets"]
    print(f"{'case':<58}{'time':>14}")
    dt = _best_of(lambda: detect_stream_values(big.values), 2)
    print(f"{'stream, ' + big.name + f' ({big.values.size} pts)':<58}{dt:>12.2f} s")
    if tweets:
        tw = max(tweets, key=lambda f: f.values.size)
        dt = _best_of(lambda: detect_stream_values(tw.values), 2)
        print(f"{'stream, ' + tw.name + f' ({tw.values.size} pts)':<58}{dt:>12.2f} s")
    x = hourly_counts(8640, seed=1)
    dt = _best_of(lambda: detect_entire_values(x), 5)
    print(f"{'entire, 8640 pts (period auto)':<58}{dt * 1e3:>11.1f} ms")
    x = hourly_counts(72 + 500, seed=2)
    windows = [x[i : i + 72] for i in range(500)]
    per = []
    for label, kw in (("last, 72 pts (period auto), per call", {}), ("last, 72 pts (period=24), per call", {"period": 24})):
        t0 = time.perf_counter()
        for w in windows:
            detect_last_values(w, **kw)
        per.append((time.perf_counter() - t0) / len(windows))
        print(f"{label:<58}{per[-1] * 1e3:>11.3f} ms")
    print(f"{'  -> 17,500 auto-period calls (8,760-hour backfill)':<58}{per[0] * 17500:>12.1f} s")


if __name__ == "__main__":
    main()
