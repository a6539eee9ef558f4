"""The pipeline's own verdicts on replayed tweets, scored like the hourly tweet-volume track.

Each realTweets file of ``../shared/nab`` (5-minute tweet counts, about two months) is expanded into
a CSV of that many tweets (each spread evenly at random within its 5 minutes), replayed with
``TWEET_SOURCE=replay``, and backfilled in one run by the README's CLI command
(``dagster asset materialize ... --partition-range``) on a fresh ``DAGSTER_HOME`` and ``DATA_DIR``.
The ``tweet_anomalies`` rows of ``tweet_count`` are then scored with NAB's standard profile against
the file's label windows widened to whole hours, next to the online detector run directly on the
benchmark's hourly series (``bench_quality.py``'s hourly track) at the sensitivity the pipeline
used (``DETECTOR_SENSITIVITY`` passes through to it). The two differ only where a 5-minute
row straddles a clock hour (the benchmark counts it in the hour it starts in).

    .venv/bin/python bench/bench_pipeline_replay.py [--files CRM,FB] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from nab import NabFile, default_nab_dir, hourly_file, load_corpus, normalised, score_file  # noqa: E402

from anomaly_pipeline.definitions import build_resources  # noqa: E402
from anomaly_pipeline.detection.online import DEFAULT_SETTINGS, detect  # noqa: E402
from anomaly_pipeline.settings import Settings  # noqa: E402
from anomaly_pipeline.tables import TWEET_ANOMALIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
ROW_SECONDS = 300  # realTweets rows are 5-minute counts
FIRST_TWEET_ID = 10**15
LIKES_P = 0.3  # likes per tweet: geometric, mean about 2.3 (only the avg_likes metric sees them)


def write_replay(f: NabFile, path: Path, seed: int = 0) -> int:
    """One tweet per count of each 5-minute row, at uniform times within it; returns how many."""
    rng = np.random.default_rng(seed)
    tweet_id = FIRST_TWEET_ID
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "created_at", "like_count", "retweet_count", "reply_count", "quote_count", "lang"])
        for stamp, value in zip(f.timestamps, f.values):
            begin = stamp.astype(datetime).replace(tzinfo=timezone.utc)
            for offset in np.sort(rng.uniform(0, ROW_SECONDS, int(np.nan_to_num(value)))):
                tweet_id += 1
                created = (begin + timedelta(seconds=float(offset))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                writer.writerow([tweet_id, created, int(rng.geometric(LIKES_P)) - 1, 0, 0, 0, "en"])
    return tweet_id - FIRST_TWEET_ID


def backfill(replay: Path, work: Path, first: datetime, last: datetime) -> float:
    """The README's CLI backfill over [first day 00:00, last] in one run; returns its wall time."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "DATA_DIR": str(work / "data"),
        "TWEET_SOURCE": "replay",
        "REPLAY_PATH": str(replay),
        "PARTITIONS_START": f"{first:%Y-%m-%d}",
    }
    (work / "dagster_home").mkdir(parents=True, exist_ok=True)
    partition_range = f"{first:%Y-%m-%d}-00:00...{last:%Y-%m-%d-%H}:00"
    command = [DAGSTER, "asset", "materialize", "-m", "anomaly_pipeline.definitions",
               "--select", "raw_tweets,hourly_tweet_metrics,tweet_anomalies", "--partition-range", partition_range]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the backfill failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def read_verdicts(work: Path) -> pl.DataFrame:
    """The run's ``tweet_anomalies`` rows, every metric."""
    store = build_resources(Settings.from_env({"DATA_DIR": str(work / "data")}))["delta_store"]
    return store.scan(TWEET_ANOMALIES).collect()


def pipeline_alarms(verdicts: pl.DataFrame, hours: list[datetime]) -> np.ndarray:
    """The pipeline's ``tweet_count`` verdicts, one per benchmark hour (False where none)."""
    counts = verdicts.filter(pl.col("metric") == "tweet_count")
    flagged = dict(zip(counts["hour"].to_list(), counts["is_anomaly"].to_list()))
    return np.array([bool(flagged.get(hour, False)) for hour in hours])


def likes_false_alarms_per_1000(verdicts: pl.DataFrame) -> float:
    """``avg_likes`` alarms per 1,000 judged hours: every one is false, since the replay draws each
    tweet's likes independently of its hour."""
    likes = verdicts.filter(pl.col("metric") == "avg_likes")
    judged = likes.filter(pl.col("status") == "ok").height
    return 1000.0 * int(likes["is_anomaly"].sum()) / judged if judged else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nab-dir", type=Path, default=None)
    ap.add_argument("--files", default="", help="comma-separated parts of file names (default: every realTweets file)")
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep it (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    files = [f for f in load_corpus(args.nab_dir or default_nab_dir()) if f.category == "realTweets"]
    if args.files:
        files = [f for f in files if any(part in f.name for part in args.files.split(","))]
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as scratch:
        root = args.keep or Path(scratch)
        pipeline_scores, direct_scores = [], []
        sensitivity = None  # read from the pipeline's verdict rows
        print(f"{'file':<34}{'tweets':>10}{'hours':>7}{'backfill':>10}{'pipeline':>10}{'direct':>8}"
              "  alarms (pipeline / direct)  avg_likes false alarms / 1kh")  # fmt: skip
        for f in files:
            hourly = hourly_file(f)
            hours = [h.astype(datetime).replace(tzinfo=timezone.utc) for h in hourly.timestamps]
            work = root / Path(f.name).stem
            work.mkdir(parents=True, exist_ok=True)
            tweets = write_replay(f, work / "tweets.csv")
            seconds = backfill(work / "tweets.csv", work, hours[0], hours[-1])
            verdicts = read_verdicts(work)
            alarms = pipeline_alarms(verdicts, hours)
            sensitivity = int(verdicts["sensitivity"][0])  # the pipeline's (DETECTOR_SENSITIVITY or its default)
            direct = detect(
                hourly.values, sensitivity=sensitivity, kind="counts", settings=DEFAULT_SETTINGS.for_step(3600)
            ).is_anomaly
            pipeline_scores.append(score_file(alarms, hourly.windows, hourly.values.size, "standard"))
            direct_scores.append(score_file(direct, hourly.windows, hourly.values.size, "standard"))
            print(f"{Path(f.name).stem:<34}{tweets:>10,}{len(hours):>7}{seconds:>9.0f}s"
                  f"{normalised(pipeline_scores[-1:]):>10.1f}{normalised(direct_scores[-1:]):>8.1f}"
                  f"  {int(alarms.sum()):>5} / {int(direct.sum()):<5}{likes_false_alarms_per_1000(verdicts):>19.1f}",
                  flush=True)  # fmt: skip
        print(f"\nall files: pipeline {normalised(pipeline_scores):.1f}, detector on the benchmark's hourly series "
              f"{normalised(direct_scores):.1f} (NAB standard profile, normalised; both at sensitivity {sensitivity})")  # fmt: skip


if __name__ == "__main__":
    main()
