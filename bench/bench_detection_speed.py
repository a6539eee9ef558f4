"""Speed benchmark of the detection engine.

Prints the online detector's (stream mode's) time per point over the largest NAB file and the
largest realTweets file (target < 1 ms a point), each also as the CLI command (``detect FILE
--mode stream``: the CSV read, the request parsed, the whole series as history, the table
written), a live hourly verdict on the detector's whole memory, the API's entire mode on 8,640
points, and last/detect on the tutorial's 72-point window.

    .venv/bin/python bench/bench_detection_speed.py [--nab-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nab import default_nab_dir, load_corpus  # noqa: E402
from timing import best_of  # noqa: E402

from anomaly_pipeline.cli import main as cli_main  # noqa: E402
from anomaly_pipeline.detection.api import detect_last  # noqa: E402
from anomaly_pipeline.detection.engine import detect_entire_values  # noqa: E402
from anomaly_pipeline.detection.online import DEFAULT_SETTINGS, detect, memory_points  # noqa: E402


def hourly_counts(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    lam = 120 * (1 + 0.6 * np.sin(2 * np.pi * t / 24)) * (1 + 0.2 * np.sin(2 * np.pi * t / 168))
    return rng.poisson(lam).astype(float)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nab-dir", type=Path, default=None, help="NAB corpus (default: $NAB_DIR or ../shared/nab)")
    args = ap.parse_args(argv)
    nab_dir = args.nab_dir or default_nab_dir()
    files = load_corpus(nab_dir)
    big = max(files, key=lambda f: f.values.size)
    tweets = [f for f in files if f.category == "realTweets"]
    print(f"{'case':<58}{'time':>14}")
    for f in [big] + ([max(tweets, key=lambda f: f.values.size)] if tweets else []):
        step = float(np.median(np.diff(f.timestamps).astype("timedelta64[s]").astype(np.int64)))
        settings = DEFAULT_SETTINGS.for_step(step)
        dt = best_of(lambda: detect(f.values, settings=settings), 2)
        print(f"{'stream, ' + f.name + f' ({f.values.size} pts)':<58}{dt:>12.2f} s  = {dt / f.values.size * 1e3:.3f} ms/pt")
        command = ["detect", str(Path(nab_dir) / "data" / f.name), "--mode", "stream", "-o", os.devnull]
        if cli_main(command) != 0:
            raise SystemExit(f"the CLI failed on {f.name}")
        dt = best_of(lambda: cli_main(command), 2)
        print(f"{'  the same as the CLI command (read, judge, write)':<58}{dt:>12.2f} s  = {dt / f.values.size * 1e3:.3f} ms/pt")
    hourly = DEFAULT_SETTINGS.for_step(3600)
    memory = hourly_counts(memory_points(hourly), seed=3)
    dt = best_of(lambda: detect(memory, settings=hourly, judge_from=memory.size - 1), 5)
    print(f"{'live hourly verdict (' + str(memory.size) + '-hour memory)':<58}{dt * 1e3:>11.1f} ms")
    year = hourly_counts(8760 + memory.size, seed=4)
    dt = best_of(lambda: detect(year, settings=hourly), 3)
    print(f"{'a year of hourly verdicts, one pass (one metric)':<58}{dt:>12.2f} s")
    x = hourly_counts(8640, seed=1)
    dt = best_of(lambda: detect_entire_values(x), 5)
    print(f"{'entire, 8640 pts (period auto)':<58}{dt * 1e3:>11.1f} ms")
    values = hourly_counts(72, seed=2)
    body = {
        "series": [{"timestamp": f"2026-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z", "value": float(v)} for i, v in enumerate(values)],
        "granularity": "hourly",
    }
    dt = best_of(lambda: detect_last(body), 20)
    print(f"{'last/detect, 72 pts (the tutorial request), per call':<58}{dt * 1e3:>11.3f} ms")


if __name__ == "__main__":
    main()
