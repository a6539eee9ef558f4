"""Write samples/hourly_tweet_counts.csv: two weeks of hourly tweet counts from the pipeline's
synthetic tweet source (seed 7), in the NAB `timestamp,value` format the `detect` command reads.

    .venv/bin/python samples/make_sample.py            # rewrites the committed sample
    .venv/bin/python samples/make_sample.py -o out.csv --start 2026-03-01 --days 28

The range holds the source's known anomalous hours (it prints them): 2026-01-28 16:00 (drop),
2026-01-30 14:00 and 22:00, 2026-02-02 11:00 (bursts), 2026-02-05 12:00 and 2026-02-06 16:00 (drops).
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from anomaly_pipeline.partitions import hours_between
from anomaly_pipeline.resources.local_tweet_sources import SyntheticTweetSource

SAMPLE = Path(__file__).with_name("hourly_tweet_counts.csv")
DEFAULT_START, DEFAULT_DAYS, DEFAULT_SEED = "2026-01-26", 14, 7


def hourly_counts(source: SyntheticTweetSource, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """Original tweets (no retweets, as the pipeline counts them) per UTC hour in [start, end)."""
    counts = Counter(
        tweet.created_at.replace(minute=0, second=0, microsecond=0)
        for tweet in source.fetch_interval(start, end)
        if not tweet.is_retweet
    )
    return [(hour, counts.get(hour, 0)) for hour in hours_between(start, end)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=SAMPLE)
    parser.add_argument("--start", default=DEFAULT_START, help="first UTC day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    start = datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    end = start + timedelta(days=args.days)
    source = SyntheticTweetSource(seed=args.seed)
    with args.output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["timestamp", "value"])
        for hour, count in hourly_counts(source, start, end):
            writer.writerow([hour.strftime("%Y-%m-%d %H:%M:%S"), count])
    for hour, kind in source.anomalous_hours(start, end):
        print(f"{hour:%Y-%m-%d %H:%M} {kind}")


if __name__ == "__main__":
    main()
