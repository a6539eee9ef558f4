"""Where tweets come from: the interface every tweet source implements.

Implementations: `SyntheticTweetSource` and `ReplayTweetSource` (embedded defaults, in
`local_tweet_sources.py`) and `XApiTweetSource` (the X API v2 through tweepy, in `x_api.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import dagster as dg

DEFAULT_QUERY = "#Azure -is:retweet lang:en"

TWITTER_EPOCH_MS = 1288834974657
"""Milliseconds since the Unix epoch of the Twitter snowflake epoch (2010-11-04T01:42:54.657Z)."""

SNOWFLAKE_TIME_SHIFT = 22


def snowflake_id(created_at_ms: int, sequence: int = 0) -> int:
    """The Twitter-style id of a tweet created at `created_at_ms` (Unix milliseconds)."""
    return ((created_at_ms - TWITTER_EPOCH_MS) << SNOWFLAKE_TIME_SHIFT) | sequence


def snowflake_time_ms(tweet_id: int) -> int:
    """The Unix milliseconds encoded in a Twitter-style id (X snowflake ids carry their creation
    time in the top bits)."""
    return (tweet_id >> SNOWFLAKE_TIME_SHIFT) + TWITTER_EPOCH_MS


@dataclass(frozen=True)
class Tweet:
    """One tweet as the pipeline needs it. `created_at` is timezone-aware UTC."""

    id: int
    created_at: datetime
    like_count: int
    retweet_count: int
    reply_count: int
    quote_count: int
    lang: str
    is_retweet: bool = False


class TweetSourceDeferred(Exception):
    """The source cannot answer now (e.g. rate limited); try again at the next tick.

    Raised before anything is returned, so the caller's cursor stays where it was and no tweet is
    lost or skipped.
    """

    def __init__(self, message: str, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class TweetSource(dg.ConfigurableResource):
    """A source of tweets matching `query`, read by id cursor (live) or by time interval (backfill)."""

    query: str = DEFAULT_QUERY

    def fetch_new(self, since_id: int | None, now: datetime) -> list[Tweet]:
        """Every tweet with id > `since_id` created before `now`, ascending by id.

        With no cursor yet, the source starts from its own recent-history default. Raises
        `TweetSourceDeferred` when it cannot answer completely now.
        """
        raise NotImplementedError

    def fetch_interval(self, start: datetime, end: datetime) -> list[Tweet]:
        """Every tweet created in [start, end), ascending by id (used by backfills of past hours)."""
        raise NotImplementedError
