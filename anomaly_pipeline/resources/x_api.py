"""`XApiTweetSource`: tweets from the X API v2 recent search, through tweepy.

Live reads (`fetch_new`) page newest-first through `GET /2/tweets/search/recent` with
`since_id` = the caller's cursor and follow `next_token` until the result set is exhausted. The
answer is all-or-nothing: when any page fails for good (rate limit beyond the configured wait,
server errors beyond the retry budget, a rejected token) the call raises and returns nothing, so
the caller's cursor does not move. A partial answer would be the newest pages only, and advancing
the cursor past them would leave a gap that is never read.

Backfills (`fetch_interval`) use `start_time`/`end_time`; recent search only covers the last
7 days.

The bearer token comes from `X_BEARER_TOKEN` (definitions pass `dagster.EnvVar`). It is kept out
of `repr`, of every exception this module raises and of tweepy's debug log (which would otherwise
print the `Authorization` header).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg
import requests
import tweepy
from pydantic import Field

from anomaly_pipeline.resources.tweet_source import Tweet, TweetSource, TweetSourceDeferred, snowflake_time_ms

TOKEN_VARIABLE = "X_BEARER_TOKEN"
TWEET_FIELDS = ["created_at", "public_metrics", "lang", "referenced_tweets"]
PAGE_SIZE = 100  # the API's maximum for recent search
RECENT_SEARCH_WINDOW = timedelta(days=7)
WINDOW_MARGIN = timedelta(minutes=1)  # stay clear of the window's edge (clock skew, latency)
END_TIME_MIN_AGE = timedelta(seconds=10)  # the API rejects an end_time closer to the request time
MAX_BACKOFF_SECONDS = 60.0
MAX_RATE_LIMIT_WAITS = 3  # per call: a limit that keeps coming back defers the tick instead

# Indirections so tests control the clock without touching the `time` module.
_sleep = time.sleep
_clock = time.time

log = logging.getLogger(__name__)


class XApiError(RuntimeError):
    """The X API refused or failed a request for good (no partial result was returned)."""


class XApiConfigError(ValueError):
    """The source is misconfigured (e.g. no bearer token); raised before any request."""


class _RedactBearer(logging.Filter):
    """Rewrites `Bearer <token>` in tweepy's debug records (it logs request headers verbatim)."""

    _pattern = re.compile(r"Bearer\s+[^'\"\s,}]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer" in message:
            record.msg = self._pattern.sub("Bearer <redacted>", message)
            record.args = ()
        return True


_tweepy_log = logging.getLogger("tweepy.client")
if not any(isinstance(f, _RedactBearer) for f in _tweepy_log.filters):
    _tweepy_log.addFilter(_RedactBearer())


class _TimeoutSession(requests.Session):
    """A session with a default timeout: tweepy's `Client.request` passes none."""

    def __init__(self, timeout: float):
        super().__init__()
        self.default_timeout = timeout

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


class XApiTweetSource(TweetSource):
    """Tweets matching `query` from the X API v2 recent search (tweepy `Client`)."""

    bearer_token: str = Field(
        repr=False,
        description=f"App-only bearer token of the X developer app (from env {TOKEN_VARIABLE}).",
    )
    max_rate_limit_wait_seconds: float = Field(
        default=30.0,
        description="On HTTP 429, wait for `x-rate-limit-reset` if it is at most this far away; "
        "otherwise defer the tick (TweetSourceDeferred).",
    )
    request_timeout_seconds: float = Field(default=10.0, description="Per-request HTTP timeout.")
    max_retries: int = Field(
        default=4, description="Retries of a page after a 5xx, timeout or connection error."
    )
    backoff_base_seconds: float = Field(
        default=1.0, description="First retry delay; doubles each retry (capped at 60 s)."
    )
    initial_lookback_minutes: int = Field(
        default=60,
        description="With no cursor yet, read tweets created this far back (at most 7 days).",
    )

    # ----------------------------------------------------------------- public API

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._checked_token()

    def fetch_new(self, since_id: int | None, now: datetime) -> list[Tweet]:
        now = _as_utc(now, "now")
        oldest_reachable = now - RECENT_SEARCH_WINDOW + WINDOW_MARGIN
        params: dict[str, Any] = {}
        if since_id is not None and snowflake_time(since_id) >= oldest_reachable:
            params["since_id"] = str(since_id)
        else:
            if since_id is not None:
                log.warning(
                    "X API cursor %d is older than the 7-day recent-search window; "
                    "tweets before %s can no longer be read",
                    since_id,
                    oldest_reachable.isoformat(),
                )
            start = now - timedelta(minutes=self.initial_lookback_minutes)
            params["start_time"] = max(start, oldest_reachable)
        tweets = self._search_all(params)
        floor = since_id if since_id is not None else -1
        return [t for t in tweets if t.id > floor and t.created_at < now]

    def fetch_interval(self, start: datetime, end: datetime) -> list[Tweet]:
        start, end = _as_utc(start, "start"), _as_utc(end, "end")
        if end <= start:
            raise ValueError(f"fetch_interval needs start < end (got {start} .. {end})")
        now = datetime.fromtimestamp(_clock(), tz=timezone.utc)
        if start < now - RECENT_SEARCH_WINDOW:
            raise XApiError(
                "X API recent search only covers the last 7 days: start_time "
                f"{start.isoformat()} is before {(now - RECENT_SEARCH_WINDOW).isoformat()}. "
                "Older hours need full-archive search (/2/tweets/search/all), which this "
                "source does not use."
            )
        if end > now - END_TIME_MIN_AGE:
            raise XApiError(
                f"X API end_time must be at least {END_TIME_MIN_AGE.seconds} seconds before the "
                f"request; {end.isoformat()} is not (now {now.isoformat()})"
            )
        # The API works in whole seconds (start inclusive, end exclusive): widen, then filter.
        params = {
            "start_time": start.replace(microsecond=0),
            "end_time": end if end.microsecond == 0 else end.replace(microsecond=0) + timedelta(seconds=1),
        }
        tweets = self._search_all(params)
        return [t for t in tweets if start <= t.created_at < end]

    # ----------------------------------------------------------------- internals

    def _checked_token(self) -> str:
        token = (self.bearer_token or "").strip()
        if not token:
            raise XApiConfigError(
                f"The X API tweet source needs a bearer token: set the environment variable "
                f"{TOKEN_VARIABLE} (X developer portal > your app > Keys and tokens > Bearer Token)."
            )
        return token

    def _new_client(self) -> tweepy.Client:
        """The one place a tweepy client is built (tests mount a fake HTTP adapter on it)."""
        client = tweepy.Client(bearer_token=self._checked_token(), wait_on_rate_limit=False)
        client.session = _TimeoutSession(self.request_timeout_seconds)
        return client

    def _search_all(self, params: dict[str, Any]) -> list[Tweet]:
        """Every page of one search, or an exception: never a partial answer."""
        client = self._new_client()
        by_id: dict[int, Tweet] = {}
        next_token: str | None = None
        pages = 0
        try:
            while True:
                page_params = dict(params)
                if next_token:
                    page_params["next_token"] = next_token
                response = self._page(client, page_params)
                pages += 1
                for item in response.data or []:
                    tweet = _to_tweet(item)
                    by_id[tweet.id] = tweet
                next_token = (response.meta or {}).get("next_token")
                if not next_token:
                    break
        finally:
            client.session.close()
        log.debug("X API search returned %d tweets in %d pages", len(by_id), pages)
        return [by_id[i] for i in sorted(by_id)]

    def _page(self, client: tweepy.Client, params: dict[str, Any]) -> tweepy.Response:
        failures = 0
        rate_limit_waits = 0
        while True:
            try:
                return client.search_recent_tweets(
                    self.query, tweet_fields=TWEET_FIELDS, max_results=PAGE_SIZE, **params
                )
            except tweepy.TooManyRequests as error:
                wait = _seconds_until_reset(error)
                if (
                    wait is None
                    or wait > self.max_rate_limit_wait_seconds
                    or rate_limit_waits >= MAX_RATE_LIMIT_WAITS
                ):
                    raise TweetSourceDeferred(
                        "X API rate limit reached (HTTP 429)"
                        + (f"; window resets in {wait:.0f} s" if wait is not None else "")
                        + f" (max_rate_limit_wait_seconds={self.max_rate_limit_wait_seconds:g}); "
                        "nothing returned, retry at the next tick",
                        retry_after_seconds=wait,
                    ) from None
                rate_limit_waits += 1
                log.warning("X API rate limit reached; waiting %.1f s for the reset", wait)
                _sleep(wait)
            except tweepy.Unauthorized:
                raise XApiError(
                    f"X API rejected the bearer token (HTTP 401): check {TOKEN_VARIABLE}"
                ) from None
            except tweepy.Forbidden as error:
                raise XApiError(
                    f"X API refused the search (HTTP 403): {_api_messages(error)} "
                    "(does the app's access level include recent search?)"
                ) from None
            except tweepy.BadRequest as error:
                raise XApiError(f"X API rejected the search (HTTP 400): {_api_messages(error)}") from None
            except (tweepy.TwitterServerError, requests.Timeout, requests.ConnectionError) as error:
                failures += 1
                what = _describe(error)
                if failures > self.max_retries:
                    raise XApiError(
                        f"X API unavailable after {failures} attempts (last: {what}); "
                        "nothing returned"
                    ) from None
                delay = min(self.backoff_base_seconds * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
                log.warning("X API request failed (%s); retry %d/%d in %.1f s",
                            what, failures, self.max_retries, delay)
                _sleep(delay)
            except tweepy.HTTPException as error:
                raise XApiError(f"X API request failed: {_describe(error)}") from None


def _to_tweet(item: tweepy.Tweet) -> Tweet:
    metrics = item.public_metrics or {}
    created_at = item.created_at
    if created_at is None:
        raise XApiError(f"X API returned tweet {item.id} without created_at (tweet_fields ignored?)")
    return Tweet(
        id=int(item.id),
        created_at=created_at.astimezone(timezone.utc),
        like_count=int(metrics.get("like_count", 0)),
        retweet_count=int(metrics.get("retweet_count", 0)),
        reply_count=int(metrics.get("reply_count", 0)),
        quote_count=int(metrics.get("quote_count", 0)),
        lang=item.lang or "und",
        is_retweet=any(ref.type == "retweeted" for ref in (item.referenced_tweets or [])),
    )


def snowflake_time(tweet_id: int) -> datetime:
    """When a tweet id was minted (X snowflake ids: milliseconds since the Twitter epoch << 22)."""
    return datetime.fromtimestamp(snowflake_time_ms(tweet_id) / 1000, tz=timezone.utc)


def _seconds_until_reset(error: tweepy.TooManyRequests) -> float | None:
    reset = error.response.headers.get("x-rate-limit-reset")
    try:
        return max(0.0, float(reset) - _clock() + 1.0) if reset is not None else None
    except ValueError:
        return None


def _api_messages(error: tweepy.HTTPException) -> str:
    return "; ".join(error.api_messages) or _describe(error)


def _describe(error: Exception) -> str:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(error, tweepy.HTTPException) and status is not None:
        return f"HTTP {status} {getattr(response, 'reason', '') or ''}".strip()
    return type(error).__name__


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {moment!r}")
    return moment.astimezone(timezone.utc)
