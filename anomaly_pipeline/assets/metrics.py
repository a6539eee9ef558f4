"""Metrics: hourly aggregates of the tweet stream in Delta."""


from datetime import datetime, timedelta, timezone

import dagster as dg
import polars as pl

from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.partitions import HOURLY_PARTITIONS, hour_start, hours_between, partition_key
from anomaly_pipeline.reporting import metrics_hour_metadata
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.event_stream import EventStream
from anomaly_pipeline.resources.stream_engine import StreamEngine
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS


@dg.asset(
    deps=[raw_tweets],
    partitions_def=HOURLY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="metrics",
    kinds={"polars", "deltalake"},
    owners=["team:anomaly-pipeline"],
    tags={"layer": "silver"},
    metadata={"table": HOURLY_TWEET_METRICS.name, "merge_key": "hour"},
)
def hourly_tweet_metrics(
    context: dg.AssetExecutionContext,
    stream_engine: StreamEngine,
    event_stream: EventStream,
    delta_store: DeltaStore,
) -> dg.MaterializeResult:
    """Hourly (UTC) tweet metrics in Delta, one row per hour: tweet_count, like_sum, avg_likes
    (the tutorial's metric: average likes per tweet in the hour), retweet/reply/quote sums.

    Runs the streaming step (events past the durable checkpoint -> dead letters for malformed
    events, tweets deduplicated by id, touched hours recomputed exactly and MERGEd by hour, then
    the checkpoint advances), then recomputes the hours of the requested partitions the stream did
    not touch, so closed hours without tweets get an explicit zero row. Hours the stream touched outside the requested
    partitions are reported as materializations of their own partitions. Each partition's
    metadata is its own hour's tweet_count, like_sum and avg_likes; the run's stream figures go on
    its newest hour.
    """
    report = stream_engine.process_available(event_stream, delta_store)
    window = context.partition_time_window
    open_end = hour_start(datetime.now(timezone.utc)) + timedelta(hours=1)
    end = min(window.end, open_end)
    hours = hours_between(window.start, end)
    # the hours the stream just touched are already recomputed and merged: only the rest
    stream_engine.recompute_hours(delta_store, [hour for hour in hours if hour not in report.touched_hours])
    rows = delta_store.read_hours(HOURLY_TWEET_METRICS, window.start, end)
    for row in rows.iter_rows(named=True):  # each partition: its own hour's values
        context.add_asset_metadata(metrics_hour_metadata(row), partition_key=partition_key(row["hour"]))

    for row in _rows_of_hours(delta_store, report.touched_hours - set(hours)).iter_rows(named=True):
        context.log_event(  # hours the stream touched outside the run: their own partitions
            dg.AssetMaterialization(
                asset_key=context.asset_key,
                partition=partition_key(row["hour"]),
                metadata={**metrics_hour_metadata(row), "updated_by": "stream"},
            )
        )
    run = {  # facts of the run's stream step, on its newest hour
        "run_events_read": report.events_read,
        "run_tweets_upserted": report.tweets_upserted,
        "run_dead_letters": report.dead_letters,
        "run_hours_touched_by_stream": len(report.touched_hours),
        "run_tweets_in_partitions": int(rows["tweet_count"].sum()) if rows.height else 0,
        "checkpoints": dg.MetadataValue.json(report.checkpoints),
    }
    context.add_asset_metadata(run, partition_key=context.partition_keys[-1])
    return dg.MaterializeResult(metadata={"table_uri": delta_store.table_uri(HOURLY_TWEET_METRICS)})


def _rows_of_hours(store: DeltaStore, hours: set[datetime]) -> pl.DataFrame:
    """The metrics rows of `hours` (any set of hours), sorted by hour."""
    if not hours:
        return pl.DataFrame()
    rows = store.read_hours(HOURLY_TWEET_METRICS, min(hours), max(hours) + timedelta(hours=1))
    return rows.filter(pl.col("hour").is_in(sorted(hours)))
