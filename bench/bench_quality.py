"""Quality benchmark: NAB standard-profile score of the engine's STREAM mode.

One configuration for every file: the stream detector (``stream_detect``) with its defaults
(sensitivity 95, maxAnomalyRatio 0.25).  Prints the normalised score per category and overall, the hourly
tweet-volume track (each of the five realTweets files summed per clock hour, label windows widened
to whole hours, the five hourly series scored as one set) and false alarms per file.

    .venv/bin/python bench/bench_quality.py [--nab-dir DIR] [--profile standard] [--per-file]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from nab import default_nab_dir, hourly_tweet_volume, load_corpus, normalised, score_file  # noqa: E402

from anomaly_pipeline.detection.request import natural_periods  # noqa: E402
from anomaly_pipeline.detection.stream import stream_detect  # noqa: E402


def calendar_cycles(timestamps) -> tuple[int, ...]:
    """The calendar cycles (day, week...) in rows of a file: NAB feeds rows, so the granularity
    is that of its most common step (a few files have irregular steps)."""
    steps, counts = np.unique(np.diff(timestamps).astype("timedelta64[s]").astype(np.int64), return_counts=True)
    return natural_periods("secondly", int(steps[np.argmax(counts)]))


def _detect(values, natural=(), config=None):
    """Stream-mode decisions; ``config`` overrides some of stream.CONFIG (tuning experiments)."""
    return stream_detect(
        values, sensitivity=95, max_anomaly_ratio=0.25, natural_periods=natural, config=config
    ).is_anomaly


def run(nab_dir, profile="standard", workers=2, config=None):
    files = load_corpus(nab_dir)
    if not files:
        raise SystemExit(f"no NAB files under {nab_dir}")
    hourly = hourly_tweet_volume(files)
    series = files + hourly
    with ProcessPoolExecutor(max_workers=workers) as pool:
        naturals = [calendar_cycles(f.timestamps) for f in series]
        dets = list(pool.map(_detect, [f.values for f in series], naturals, [config] * len(series), chunksize=1))
    scores = {f.name: score_file(d, f.windows, f.values.size, profile) for f, d in zip(series, dets)}
    return files, hourly, scores


def report(files, hourly, scores, per_file=False, out=sys.stdout):
    by_cat = defaultdict(list)
    for f in files:
        by_cat[f.category].append(f.name)
    rows = [(cat, names) for cat, names in sorted(by_cat.items())]
    rows.append(("ALL (%d files)" % len(files), [f.name for f in files]))
    rows.append(("hourly tweet volume", [h.name for h in hourly]))
    print(f"{'set':<28}{'files':>6}{'windows':>9}{'TP':>5}{'FN':>5}{'FP':>6}{'FP/file':>9}{'score':>8}", file=out)
    for label, names in rows:
        sc = [scores[n] for n in names]
        fp = sum(s.fp for s in sc)
        win = sum(s.tp + s.fn for s in sc)
        print(
            f"{label:<28}{len(sc):>6}{win:>9}{sum(s.tp for s in sc):>5}{sum(s.fn for s in sc):>5}"
            f"{fp:>6}{fp / len(sc):>9.1f}{normalised(sc):>8.1f}",
            file=out,
        )
    if per_file:
        print(file=out)
        for f in files + hourly:
            s = scores[f.name]
            print(f"{f.name:<64} TP {s.tp:>2} FN {s.fn:>2} FP {s.fp:>3} raw {s.raw:>7.3f}", file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nab-dir", type=Path, default=None, help="NAB corpus (default: $NAB_DIR or ../shared/nab)")
    ap.add_argument("--profile", default="standard", choices=["standard", "reward_low_FP", "reward_low_FN"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument(
        "--config", type=json.loads, default=None,
        help='tuning experiments: JSON overrides of stream.CONFIG, e.g. \'{"raw_weight": 0.65}\'',
    )  # fmt: skip
    args = ap.parse_args(argv)
    nab_dir = args.nab_dir or default_nab_dir()
    t0 = time.perf_counter()
    files, hourly, scores = run(nab_dir, args.profile, args.workers, args.config)
    overrides = f", CONFIG overrides {args.config}" if args.config else ""
    print(f"NAB {args.profile} profile, stream mode, sensitivity 95, maxAnomalyRatio 0.25{overrides}")
    report(files, hourly, scores, per_file=args.per_file)
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
