"""The streaming step: from the event stream's checkpoint into the Delta tables.

`LocalStreamEngine` (the embedded default) runs it in-process with polars and deltalake; the
Databricks variant runs the same rules as a Spark structured-streaming job
(`anomaly_pipeline/databricks/`), started by its own sensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import dagster as dg
import polars as pl

from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.event_stream import DEFAULT_CONSUMER_GROUP, EventStream
from anomaly_pipeline.streaming.aggregate import hourly_metrics, latest_per_tweet, with_time_keys
from anomaly_pipeline.streaming.parse import parse_events
from anomaly_pipeline.tables import DEAD_LETTER_EVENTS, HOURLY_TWEET_METRICS, TWEETS


@dataclass
class StreamRunReport:
    """What one streaming run did."""

    events_read: int = 0
    tweets_upserted: int = 0
    dead_letters: int = 0
    batches: int = 0
    touched_hours: set[datetime] = field(default_factory=set)
    checkpoints: dict[str, int] = field(default_factory=dict)


class StreamEngine(dg.ConfigurableResource):
    """Moves events past the consumer checkpoint into the Delta tables, then advances the checkpoint."""

    consumer_group: str = DEFAULT_CONSUMER_GROUP

    def process_available(self, stream: EventStream, store: DeltaStore) -> StreamRunReport:
        raise NotImplementedError

    def recompute_hours(self, store: DeltaStore, hours: list[datetime]) -> pl.DataFrame:
        """Recompute the listed hours exactly from the deduplicated tweets and MERGE them."""
        if not hours:
            return pl.DataFrame()
        days = sorted({hour.date() for hour in hours})
        tweets = (
            store.scan(TWEETS)
            .filter(pl.col("day").is_in(days) & pl.col("hour").is_in(hours))
            .select("hour", "like_count", "retweet_count", "reply_count", "quote_count")
            .collect()
        )
        metrics = hourly_metrics(tweets, hours=sorted(hours)).with_columns(
            updated_at=pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC"))
        )
        store.merge(HOURLY_TWEET_METRICS, metrics)
        return metrics


class LocalStreamEngine(StreamEngine):
    """In-process micro-batch engine (the embedded default in place of Databricks).

    Per micro-batch: read events past the checkpoint, dead-letter malformed ones, upsert tweets by
    id (a tweet seen twice counts once, its latest counts win), recompute every touched hour
    exactly from the tweets table, MERGE by hour, and only then advance the checkpoint. A crash
    anywhere before the checkpoint replays the batch, which the MERGEs make harmless.
    """

    max_batch_events: int = 200_000

    def process_available(self, stream: EventStream, store: DeltaStore) -> StreamRunReport:
        report = StreamRunReport()
        positions = stream.load_checkpoints(self.consumer_group)
        while True:
            records = stream.read(after=positions, max_events=self.max_batch_events)
            if not records:
                break
            now = datetime.now(timezone.utc)
            parsed = parse_events(records)
            tweets = with_time_keys(latest_per_tweet(parsed.tweets)).with_columns(
                ingested_at=pl.lit(now).cast(pl.Datetime("us", "UTC"))
            )
            store.merge(TWEETS, tweets)
            store.merge(
                DEAD_LETTER_EVENTS,
                parsed.dead_letters.with_columns(
                    received_at=pl.lit(now).cast(pl.Datetime("us", "UTC"))
                ),
            )
            hours = tweets.get_column("hour").unique().to_list()
            self.recompute_hours(store, hours)
            for record in records:
                positions[record.partition_id] = max(
                    positions.get(record.partition_id, -1), record.sequence_number
                )
            stream.save_checkpoints(positions, self.consumer_group)
            report.batches += 1
            report.events_read += len(records)
            report.tweets_upserted += tweets.height
            report.dead_letters += parsed.dead_letters.height
            report.touched_hours.update(hours)
        report.checkpoints = dict(positions)
        return report


class ExternalStreamEngine(StreamEngine):
    """The stream is processed outside Dagster's runs, by the Databricks structured-streaming job
    that `databricks_stream_sensor` starts. Materializing `hourly_tweet_metrics` then only
    recomputes the requested hours from the tweets table that job keeps up to date."""

    def process_available(self, stream: EventStream, store: DeltaStore) -> StreamRunReport:
        return StreamRunReport(checkpoints=stream.load_checkpoints(self.consumer_group))
