"""Deduplication and exact hourly aggregation of tweet rows (the tutorial's hourly average likes)."""

from __future__ import annotations

from datetime import datetime

import polars as pl

METRIC_COLUMNS = ("tweet_count", "like_sum", "avg_likes", "retweet_sum", "reply_sum", "quote_sum")
SUMS = {"like_sum": "like_count", "retweet_sum": "retweet_count", "reply_sum": "reply_count",
        "quote_sum": "quote_count"}


def latest_per_tweet(tweets: pl.DataFrame) -> pl.DataFrame:
    """One row per tweet id, the last one in stream order (its counts are the most recent)."""
    return tweets.unique(subset="tweet_id", keep="last", maintain_order=True)


def with_time_keys(tweets: pl.DataFrame) -> pl.DataFrame:
    """Add the `hour` (UTC, floored) and `day` columns every tweet row is keyed by."""
    return tweets.with_columns(
        hour=pl.col("created_at").dt.truncate("1h"),
        day=pl.col("created_at").dt.date(),
    )


def hourly_metrics(tweets: pl.DataFrame, hours: list[datetime] | None = None) -> pl.DataFrame:
    """Per-hour metrics of deduplicated tweet rows (with an `hour` column).

    With `hours`, the result has exactly one row per listed hour: an hour without tweets gets
    counts of 0 and a null `avg_likes` (there is no average of nothing).

    Sums are added up in 128 bits and cast back to the tables' int64 strictly: parsed counts are
    bounded (`MAX_COUNT`) so they always fit, and a sum that would not raises instead of wrapping.
    """
    grouped = tweets.group_by("hour").agg(
        pl.len().cast(pl.Int64).alias("tweet_count"),
        *[pl.col(count).cast(pl.Int128).sum().cast(pl.Int64).alias(name) for name, count in SUMS.items()],
    )
    if hours is not None:
        frame = pl.DataFrame({"hour": hours}, schema={"hour": pl.Datetime("us", "UTC")})
        grouped = frame.join(grouped, on="hour", how="left").with_columns(
            pl.col("tweet_count", *SUMS).fill_null(0)
        )
    return grouped.with_columns(
        avg_likes=pl.when(pl.col("tweet_count") > 0)
        .then(pl.col("like_sum") / pl.col("tweet_count"))
        .otherwise(None)
    ).select("hour", *METRIC_COLUMNS).sort("hour")
