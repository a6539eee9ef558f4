"""The streaming step: from the event stream's checkpoint into the Delta tables.

`LocalStreamEngine` (the embedded default) runs it in-process with polars and deltalake; the
Databricks variant runs the same rules as a Spark structured-streaming job
(`anomaly_pipeline/databricks/`), started by its own sensor.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone

import dagster as dg
import polars as pl

from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.event_stream import DEFAULT_CONSUMER_GROUP, EventRecord, EventStream
from anomaly_pipeline.streaming.aggregate import hourly_metrics, latest_per_tweet, with_time_keys
from anomaly_pipeline.streaming.parse import parse_events
from anomaly_pipeline.tables import DEAD_LETTER_EVENTS, HOURLY_TWEET_METRICS, TWEETS

STREAM_TABLES = (TWEETS, HOURLY_TWEET_METRICS, DEAD_LETTER_EVENTS)
"""The tables the stream step writes, created on its first run."""
COUNTED_TABLES = (TWEETS, HOURLY_TWEET_METRICS)
"""The tables the hourly counts live in: once the stream has consumed events, they must exist (a
recreated empty one would silently lose counts). `dead_letter_events` is only a log of rejected
events; deleting it to purge them is allowed."""


@dataclass
class StreamRunReport:
    """What one streaming run did."""

    events_read: int = 0
    tweets_upserted: int = 0
    tweets_moved: int = 0
    dead_letters: int = 0
    batches: int = 0
    touched_hours: set[datetime] = field(default_factory=set)
    checkpoints: dict[str, int] = field(default_factory=dict)


class StreamEngine(dg.ConfigurableResource):
    """Moves events past the consumer checkpoint into the Delta tables, then advances the checkpoint."""

    consumer_group: str = DEFAULT_CONSUMER_GROUP

    def process_available(self, stream: EventStream, store: DeltaStore) -> StreamRunReport:
        raise NotImplementedError

    def recompute_hours(
        self, store: DeltaStore, hours: list[datetime], excluding: Collection[int] = ()
    ) -> pl.DataFrame:
        """Recompute the listed hours exactly from the deduplicated tweets (leaving out the tweet
        ids in `excluding`) and MERGE them."""
        if not hours:
            return pl.DataFrame()
        days = sorted({hour.date() for hour in hours})
        tweets = store.scan(TWEETS).filter(pl.col("day").is_in(days) & pl.col("hour").is_in(hours))
        if excluding:
            tweets = tweets.filter(~pl.col("tweet_id").is_in(list(excluding)))
        tweets = tweets.select("hour", "like_count", "retweet_count", "reply_count", "quote_count").collect()
        metrics = hourly_metrics(tweets, hours=sorted(hours)).with_columns(
            updated_at=pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC"))
        )
        store.merge(HOURLY_TWEET_METRICS, metrics)
        return metrics


class LocalStreamEngine(StreamEngine):
    """In-process micro-batch engine (the embedded default in place of Databricks).

    Per micro-batch: read events past the checkpoint, dead-letter malformed ones, upsert tweets by
    id (a tweet seen twice counts once, its latest event wins, even when its `created_at` moved it
    to another hour or day), recompute every hour a tweet left or entered exactly from the tweets
    table, MERGE by hour, and only then advance the checkpoint. A crash anywhere before the
    checkpoint replays the batch, which the MERGEs make harmless (see `_write_batch`).

    The tables are created on the first run; once the checkpoint has advanced, a missing
    `tweets` or `hourly_tweet_metrics` table is a `MissingTableError`, raised before any write.
    """

    max_batch_events: int = 200_000

    def process_available(self, stream: EventStream, store: DeltaStore) -> StreamRunReport:
        report = StreamRunReport()
        positions = stream.load_checkpoints(self.consumer_group)
        while True:
            self._check_tables(store, positions)
            records = stream.read(after=positions, max_events=self.max_batch_events)
            if not records:
                break
            self._write_batch(store, records, report)
            for record in records:
                positions[record.partition_id] = max(
                    positions.get(record.partition_id, -1), record.sequence_number
                )
            stream.save_checkpoints(positions, self.consumer_group)
            report.batches += 1
            report.events_read += len(records)
        report.checkpoints = dict(positions)
        return report

    def _check_tables(self, store: DeltaStore, positions: dict[str, int]) -> None:
        """Create the tables before the first event is consumed; after that, require them."""
        if all(sequence < 0 for sequence in positions.values()):
            for spec in STREAM_TABLES:
                store.ensure_table(spec)
            return
        why = (
            f"the stream has already processed events into it (consumer group "
            f"{self.consumer_group!r} is at {positions})"
        )
        for spec in COUNTED_TABLES:
            store.require_table(spec, why)

    def _write_batch(self, store: DeltaStore, records: list[EventRecord], report: StreamRunReport) -> None:
        """Write one batch and count it in `report`.

        Order, so that a crash between any two steps is repaired by replaying the batch:
        1. the hours that tweets of the batch leave (their stored `created_at` is in another hour)
           are recomputed without them; a replay finds the tweets still stored there and redoes it;
        2. the tweets are upserted by id across the whole table (pruned to the days involved);
        3. the hours the tweets are in now are recomputed; a replay finds them already moved and
           recomputes the same hours.
        """
        now = pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC"))
        parsed = parse_events(records)
        tweets = with_time_keys(latest_per_tweet(parsed.tweets)).with_columns(ingested_at=now)
        stored = stored_placement(store, tweets.get_column("tweet_id"))
        moved = stored.join(tweets.select("tweet_id", new_hour="hour"), on="tweet_id").filter(
            pl.col("hour") != pl.col("new_hour")
        )
        left = set(moved.get_column("hour").to_list())
        self.recompute_hours(store, sorted(left), excluding=moved.get_column("tweet_id").to_list())
        days = {*tweets.get_column("day").to_list(), *stored.get_column("day").to_list()}
        store.merge(TWEETS, tweets, target_partitions={"day": days})
        store.merge(DEAD_LETTER_EVENTS, parsed.dead_letters.with_columns(received_at=now))
        entered = set(tweets.get_column("hour").to_list())
        self.recompute_hours(store, sorted(entered))
        report.tweets_upserted += tweets.height
        report.tweets_moved += moved.height
        report.dead_letters += parsed.dead_letters.height
        report.touched_hours.update(left | entered)


def stored_placement(store: DeltaStore, tweet_ids: pl.Series) -> pl.DataFrame:
    """The `tweet_id`, `hour` and `day` stored in the tweets table for these ids."""
    columns = ("tweet_id", "hour", "day")
    if tweet_ids.is_empty():
        return store.scan(TWEETS).select(columns).head(0).collect()
    return store.scan(TWEETS).filter(pl.col("tweet_id").is_in(tweet_ids)).select(columns).collect()


class ExternalStreamEngine(StreamEngine):
    """The stream is processed outside Dagster's runs, by the Databricks structured-streaming job
    that `databricks_stream_sensor` starts. Materializing `hourly_tweet_metrics` then only
    recomputes the requested hours from the tweets table that job keeps up to date."""

    def process_available(self, stream: EventStream, store: DeltaStore) -> StreamRunReport:
        return StreamRunReport(checkpoints=stream.load_checkpoints(self.consumer_group))
