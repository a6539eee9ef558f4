"""Every Delta table the pipeline writes: name, schema, merge key and partition columns, declared once.

All timestamps are microsecond UTC. Tables are written with `deltalake` MERGE on their key, so
re-processing the same input never duplicates rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    merge_key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()


TWEETS = TableSpec(
    name="tweets",
    schema=pa.schema(
        [
            ("tweet_id", pa.int64()),
            ("created_at", UTC_TIMESTAMP),
            ("hour", UTC_TIMESTAMP),
            ("day", pa.date32()),
            ("like_count", pa.int64()),
            ("retweet_count", pa.int64()),
            ("reply_count", pa.int64()),
            ("quote_count", pa.int64()),
            ("lang", pa.string()),
            ("query", pa.string()),
            ("ingested_at", UTC_TIMESTAMP),
        ]
    ),
    merge_key=("tweet_id",),
    partition_by=("day",),
)
"""Deduplicated tweets, one row per tweet id (the latest event wins); the source of exact hourly
recomputation."""

HOURLY_TWEET_METRICS = TableSpec(
    name="hourly_tweet_metrics",
    schema=pa.schema(
        [
            ("hour", UTC_TIMESTAMP),
            ("tweet_count", pa.int64()),
            ("like_sum", pa.int64()),
            ("avg_likes", pa.float64()),  # null for an hour without tweets
            ("retweet_sum", pa.int64()),
            ("reply_sum", pa.int64()),
            ("quote_sum", pa.int64()),
            ("updated_at", UTC_TIMESTAMP),
        ]
    ),
    merge_key=("hour",),
)

DEAD_LETTER_EVENTS = TableSpec(
    name="dead_letter_events",
    schema=pa.schema(
        [
            ("partition_id", pa.string()),
            ("sequence_number", pa.int64()),
            ("enqueued_time", UTC_TIMESTAMP),
            ("body", pa.string()),
            ("reason", pa.string()),
            ("received_at", UTC_TIMESTAMP),
        ]
    ),
    merge_key=("partition_id", "sequence_number"),
)
"""Events the stream step could not parse, with the reason; they never stop the stream."""

TWEET_ANOMALIES = TableSpec(
    name="tweet_anomalies",
    schema=pa.schema(
        [
            ("hour", UTC_TIMESTAMP),
            ("metric", pa.string()),
            ("status", pa.string()),  # ok | insufficient_history | no_data | rejected:<code>
            ("value", pa.float64()),
            ("expected_value", pa.float64()),
            ("upper_margin", pa.float64()),
            ("lower_margin", pa.float64()),
            ("is_anomaly", pa.bool_()),
            ("is_positive_anomaly", pa.bool_()),
            ("is_negative_anomaly", pa.bool_()),
            ("severity", pa.float64()),
            ("period", pa.int64()),
            ("points_used", pa.int64()),
            ("detector", pa.string()),
            ("sensitivity", pa.int64()),  # the budget the verdict was judged at (null: before it was recorded)
            ("detected_at", UTC_TIMESTAMP),
        ]
    ),
    merge_key=("hour", "metric"),
)

ALL_TABLES = (TWEETS, HOURLY_TWEET_METRICS, DEAD_LETTER_EVENTS, TWEET_ANOMALIES)
