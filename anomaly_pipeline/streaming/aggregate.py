"""Deduplication and exact hourly aggregation of tweet rows (the tutorial's hourly average likes)."""

from __future__ import annotations

from datetime import datetime

import polars as pl

METRIC_COLUMNS = ("tweet_count", "like_sum", "avg_likes", "retweet_sum", "reply_sum", "quote_sum")


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
    """
    grouped = tweets.group_by("hour").agg(
        tweet_count=pl.len().cast(pl.Int64),
        like_sum=pl.col("like_count").sum().cast(pl.Int64),
        retweet_sum=pl.col("retweet_count").sum().cast(pl.Int64),
        reply_sum=pl.col("reply_count").sum().cast(pl.Int64),
        quote_sum=pl.col("quote_count").sum().cast(pl.Int64),
    )
    if hours is not None:
        frame = pl.DataFrame({"hour": hours}, schema={"hour": pl.Datetime("us", "UTC")})
        grouped = frame.join(grouped, on="hour", how="left").with_columns(
            pl.col("tweet_count", "like_sum", "retweet_sum", "reply_sum", "quote_sum").fill_null(0)
        )
    return grouped.with_columns(
        avg_likes=pl.when(pl.col("tweet_count") > 0)
        .then(pl.col("like_sum") / pl.col("tweet_count"))
        .otherwise(None)
    ).select("hour", *METRIC_COLUMNS).sort("hour")
