"""Throughput of the streaming step: events/s from the local event log into the hourly Delta table.

Publishes a year of synthetic tweet events (about 900k) to a fresh LocalEventLog, then times one
LocalStreamEngine run draining them (parse, dead-letter, dedupe, MERGE tweets, recompute hours,
MERGE hourly, checkpoint). Target: 50,000 events/s or more on 2 cores.

    .venv/bin/python bench/bench_stream.py [--days 365] [--batch 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl

from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.local_event_log import LocalEventLog
from anomaly_pipeline.resources.local_tweet_sources import SyntheticTweetSource
from anomaly_pipeline.resources.stream_engine import LocalStreamEngine
from anomaly_pipeline.streaming.events import encode_tweet_event
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--batch", type=int, default=200_000, help="events per micro-batch")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_stream_"))
    stream = LocalEventLog(path=str(work / "events.sqlite"))
    store = DeltaStore(root_uri=str(work / "delta"))
    engine = LocalStreamEngine(max_batch_events=args.batch)
    source = SyntheticTweetSource()

    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    tweets = [t for t in source.fetch_interval(start, start + timedelta(days=args.days)) if not t.is_retweet]
    began = time.perf_counter()
    stream.publish([(str(t.id), encode_tweet_event(t, source.query)) for t in tweets])
    publish_seconds = time.perf_counter() - began

    began = time.perf_counter()
    report = engine.process_available(stream, store)
    stream_seconds = time.perf_counter() - began

    hours = store.scan(HOURLY_TWEET_METRICS).select(pl.len()).collect().item()
    assert report.events_read == len(tweets) and report.dead_letters == 0
    print(f"events published          {len(tweets):>10,}  ({len(tweets) / publish_seconds:,.0f} events/s)")
    print(f"stream step: events read  {report.events_read:>10,}  in {report.batches} micro-batches")
    print(f"stream step: wall time    {stream_seconds:>10.1f} s")
    print(f"stream step: throughput   {report.events_read / stream_seconds:>10,.0f} events/s  (target >= 50,000)")
    print(f"hourly rows written       {hours:>10,}")


if __name__ == "__main__":
    main()
