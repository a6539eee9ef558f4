"""Throughput benchmark of `LocalEventLog`: publish and read rates in events per second.

Publishes N tweet-sized events (real event bodies from the synthetic source, keyed by tweet id)
in batches, then reads them all back in batches, through `read` (EventRecord objects) and the
bulk fast paths `read_columns` and `read_bodies`. The log lives in a fresh temporary directory
unless --path.

    .venv/bin/python bench/bench_event_log.py [--events 1000000] [--batch 50000]
        [--synchronous FULL] [--path FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anomaly_pipeline.resources.local_event_log import LocalEventLog  # noqa: E402
from anomaly_pipeline.resources.local_tweet_sources import SyntheticTweetSource  # noqa: E402
from anomaly_pipeline.streaming.events import encode_tweet_event  # noqa: E402


def make_events(count: int) -> list[tuple[str | None, str]]:
    """`count` (partition key, body) pairs: synthetic tweets, keyed by id, with bodies in the
    format of `encode_tweet_event` (checked on the first one) but formatted in bulk."""
    source = SyntheticTweetSource()
    start = datetime(2025, 1, 6, tzinfo=timezone.utc)
    events: list[tuple[str | None, str]] = []
    while len(events) < count:
        end = start + timedelta(days=30)
        c = source.interval_columns(start, end)
        stamps = np.datetime_as_string(c["created_at_ms"].astype("datetime64[ms]"), unit="ms")
        for i, ts, lk, rt, rp, qt, lg in zip(
            c["id"].tolist(), stamps.tolist(), c["like_count"].tolist(),
            c["retweet_count"].tolist(), c["reply_count"].tolist(), c["quote_count"].tolist(),
            c["lang"].tolist(),
        ):
            events.append((str(i), f'{{"id":"{i}","created_at":"{ts}Z","like_count":{lk},'
                           f'"retweet_count":{rt},"reply_count":{rp},"quote_count":{qt},'
                           f'"lang":"{lg}","query":"#Azure"}}'))
        if start == datetime(2025, 1, 6, tzinfo=timezone.utc):
            assert events[0][1] == encode_tweet_event(source.fetch_interval(start, end)[0], "#Azure")
        start = end
    return events[:count]


def drain(log: LocalEventLog, batch: int, method: str) -> int:
    positions: dict[str, int] = {}
    total = 0
    while True:
        if method == "read_bodies":
            bodies, positions = log.read_bodies(positions, batch)
            got = len(bodies)
        elif method == "read_columns":
            columns = log.read_columns(positions, batch)
            for partition, sequence in zip(columns["partition_id"], columns["sequence_number"]):
                positions[partition] = sequence
            got = len(columns["body"])
        else:
            records = log.read(positions, batch)
            for record in records:
                positions[record.partition_id] = record.sequence_number
            got = len(records)
        if not got:
            return total
        total += got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000, help="events per publish/read call")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "OFF"])
    parser.add_argument("--path", help="log file (default: a new temporary directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        path = args.path or str(Path(scratch) / "events.sqlite")
        log = LocalEventLog(
            path=path, partition_count=args.partitions, synchronous=args.synchronous
        )
        started = time.perf_counter()
        events = make_events(args.events)
        size = sum(len(body) for _, body in events) / len(events)
        print(f"generated {len(events):,} events (mean body {size:.0f} B) "
              f"in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        for offset in range(0, len(events), args.batch):
            log.publish(events[offset : offset + args.batch])
        elapsed = time.perf_counter() - started
        print(f"publish      {len(events) / elapsed:>12,.0f} events/s  ({elapsed:.2f} s, "
              f"batches of {args.batch:,}, synchronous={args.synchronous})")
        del events

        for label in ("read", "read_columns", "read_bodies"):
            started = time.perf_counter()
            total = drain(log, args.batch, label)
            elapsed = time.perf_counter() - started
            print(f"{label:<12} {total / elapsed:>12,.0f} events/s  ({elapsed:.2f} s, "
                  f"{elapsed / total * 1e6:.2f} us/event)")


if __name__ == "__main__":
    main()
