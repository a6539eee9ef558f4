"""The tweet event: the JSON document `raw_tweets` publishes and the stream step parses.

One event per tweet, e.g.::

    {"id": "1861234567890123456", "created_at": "2026-11-22T18:04:05.000Z", "like_count": 3,
     "retweet_count": 0, "reply_count": 1, "quote_count": 0, "lang": "en", "query": "#Azure"}

`id` is a decimal string, as the X API sends it (tweet ids exceed JavaScript's safe integers).
The same rules are applied by the embedded stream engine (polars) and the Databricks job (Spark):
see `REQUIRED_FIELDS` and `COUNT_FIELDS`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from anomaly_pipeline.resources.tweet_source import Tweet

COUNT_FIELDS = ("like_count", "retweet_count", "reply_count", "quote_count")
REQUIRED_FIELDS = ("id", "created_at", "like_count")


def encode_tweet_event(tweet: Tweet, query: str) -> str:
    """The event body for one tweet (compact JSON, UTF-8 safe)."""
    return json.dumps(
        {
            "id": str(tweet.id),
            "created_at": format_timestamp(tweet.created_at),
            "like_count": tweet.like_count,
            "retweet_count": tweet.retweet_count,
            "reply_count": tweet.reply_count,
            "quote_count": tweet.quote_count,
            "lang": tweet.lang,
            "query": query,
        },
        separators=(",", ":"),
    )


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z suffix, the X API's own format."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
