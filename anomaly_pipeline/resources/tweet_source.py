"""Where tweets come from: the interface every tweet source implements.

Implementations: `SyntheticTweetSource` and `ReplayTweetSource` (embedded defaults, in
`local_tweet_sources.py`) and `XApiTweetSource` (the X API v2 through tweepy, in `x_api.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import dagster as dg

DEFAULT_QUERY = "#Azure -is:retweet lang:en"


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
