"""Wall time of a single-run backfill of `tweet_anomalies` over 8,760 hours (a year).

Prepares a year (plus the detector's memory as lookback) of hourly metrics from the synthetic
source, then measures:
0. one live hour: the verdicts of a single hour (both metrics) as the hourly schedule makes them;
1. the asset's own work for the whole range (read the metrics once, one online-detector pass per
   metric for 17,520 verdicts, one MERGE), and the detection time alone;
2. the same as a real Dagster run (`materialize` with the partition range tags) on an in-memory
   instance, which adds Dagster's bookkeeping: a planned and a materialization event per partition.
   `--instance disk` runs it on a SQLite instance in a temp DAGSTER_HOME instead (much slower:
   Dagster writes ~17 SQL statements per partition event).
Targets: a live hour well under 100 ms of detection; a year under 60 s.

    .venv/bin/python bench/bench_backfill.py [--hours 8760] [--instance memory|disk|none]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

# The partitions start where this benchmark's year does (they are fixed when the assets are imported).
BENCH_START_DATE = "2025-01-04"
os.environ["PARTITIONS_START"] = BENCH_START_DATE

import dagster as dg  # noqa: E402
import polars as pl  # noqa: E402
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from anomaly_pipeline.assets.anomalies import METRIC_KINDS, DetectionConfig, judge_hours, metric_grid, tweet_anomalies
from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.detector import HOURLY_MEMORY, LocalAnomalyDetector
from anomaly_pipeline.resources.local_tweet_sources import SyntheticTweetSource
from anomaly_pipeline.resources.stream_engine import LocalStreamEngine
from anomaly_pipeline.tables import TWEET_ANOMALIES, TWEETS
from timing import best_of  # bench/ is the script's own directory
from anomaly_pipeline.streaming.aggregate import with_time_keys

START = datetime.fromisoformat(BENCH_START_DATE).replace(tzinfo=timezone.utc)


def prepare_metrics(store: DeltaStore, hours: int) -> None:
    """A year of tweets straight into the tweets table, then every hour recomputed from it."""
    source = SyntheticTweetSource()
    begin = START - timedelta(hours=HOURLY_MEMORY)
    columns = source.interval_columns(begin, START + timedelta(hours=hours))
    tweets = with_time_keys(
        pl.DataFrame(columns)
        .filter(~pl.col("is_retweet"))
        .select(
            pl.col("id").alias("tweet_id"),
            pl.from_epoch("created_at_ms", time_unit="ms").cast(pl.Datetime("us", "UTC")).alias("created_at"),
            "like_count", "retweet_count", "reply_count", "quote_count", "lang",
            query=pl.lit(source.query),
            ingested_at=pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC")),
        )
    )  # fmt: skip
    store.merge(TWEETS, tweets.select(TWEETS.schema.names))
    engine = LocalStreamEngine()
    engine.recompute_hours(store, [begin + timedelta(hours=h) for h in range(hours + HOURLY_MEMORY)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--instance", choices=["memory", "disk", "none"], default="memory")
    args = parser.parse_args()
    logging.disable(logging.INFO)

    work = Path(tempfile.mkdtemp(prefix="bench_backfill_"))
    store = DeltaStore(root_uri=str(work / "delta"))
    resources = {"delta_store": store, "anomaly_detector": LocalAnomalyDetector()}
    began = time.perf_counter()
    prepare_metrics(store, args.hours)
    print(f"prepared {args.hours + HOURLY_MEMORY:,} hours of metrics in {time.perf_counter() - began:.1f} s")
    first, last = partition_key(START), partition_key(START + timedelta(hours=args.hours - 1))

    detector = resources["anomaly_detector"]
    last_hour = START + timedelta(hours=args.hours - 1)
    grid = metric_grid(store, last_hour - timedelta(hours=HOURLY_MEMORY - 1), last_hour + timedelta(hours=1))
    live = best_of(lambda: [detector.judge_recent(grid["hour"], grid[m], len(grid["hour"]) - 1, history=HOURLY_MEMORY,
                                                   kind=METRIC_KINDS[m]) for m in METRIC_KINDS])  # fmt: skip
    one = best_of(lambda: judge_hours(store, detector, DetectionConfig(), last_hour, last_hour + timedelta(hours=1)))
    print(f"live hour, both metrics: detection {live * 1e3:.1f} ms, with its Delta read {one * 1e3:.0f} ms  (target < 100 ms)")

    full = metric_grid(store, START - timedelta(hours=HOURLY_MEMORY - 1), START + timedelta(hours=args.hours))
    first_judged = HOURLY_MEMORY - 1
    year = best_of(lambda: [detector.judge_recent(full["hour"], full[m], first_judged, history=HOURLY_MEMORY,
                                                   kind=METRIC_KINDS[m]) for m in METRIC_KINDS])  # fmt: skip
    print(f"detection alone, {args.hours:,} hours x 2 metrics: {year:.2f} s  (target < 60 s)")

    began = time.perf_counter()
    rows = judge_hours(store, detector, DetectionConfig(), START, START + timedelta(hours=args.hours))
    store.merge(TWEET_ANOMALIES, rows)
    compute = time.perf_counter() - began
    verdicts = store.scan(TWEET_ANOMALIES).collect()
    flagged = verdicts.filter(pl.col("is_anomaly")).height
    print(f"asset work, {args.hours:,} hours x 2 metrics: {compute:.1f} s "
          f"({verdicts.height:,} verdicts, {flagged} anomalies)  (target < 60 s)")  # fmt: skip

    if args.instance == "none":
        return
    if args.instance == "disk":
        os.environ["DAGSTER_HOME"] = tempfile.mkdtemp(prefix="bench_dagster_home_")
        instance = dg.DagsterInstance.get()
    else:
        instance = dg.DagsterInstance.ephemeral()
    began = time.perf_counter()
    result = dg.materialize(
        [tweet_anomalies],
        resources=resources,
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )
    assert result.success
    print(f"single-run Dagster backfill ({args.instance} instance): "
          f"{time.perf_counter() - began:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
