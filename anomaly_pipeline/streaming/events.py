"""The tweet event: the JSON document `raw_tweets` publishes and the stream step parses.

One event per tweet, e.g.::

    {"id": "1861234567890123456", "created_at": "2026-11-22T18:04:05.000Z", "like_count": 3,
     "retweet_count": 0, "reply_count": 1, "quote_count": 0, "lang": "en", "query": "#Azure"}

`id` is a decimal string, as the X API sends it (tweet ids exceed JavaScript's safe integers).
The same rules are applied by the embedded stream engine (polars) and the Databricks job (Spark):
see `REQUIRED_FIELDS`, `COUNT_FIELDS` and `MAX_COUNT`.

A body is UTF-8 text. A reader that receives bytes decodes them with `decode_body`, which never
fails: bytes that are not UTF-8 are kept as surrogate escapes, so the parser dead-letters the event
("body is not valid UTF-8") instead of the reader stopping the stream.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from anomaly_pipeline.resources.tweet_source import Tweet

COUNT_FIELDS = ("like_count", "retweet_count", "reply_count", "quote_count")
REQUIRED_FIELDS = ("id", "created_at", "like_count")
MAX_COUNT = 2**31 - 1
"""The largest like/retweet/reply/quote count accepted. X's counts are 32-bit (the most liked
tweet ever has about 7 million likes), and summing up to 2**32 tweets of this bound still fits the
tables' int64 sums, so an hour's sums can never overflow."""
_BODY_ENCODING = "utf-8"


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


def decode_body(data: bytes) -> str:
    """An event body received as bytes, as text: UTF-8, any invalid byte kept as a surrogate escape
    (never raises; the parser rejects such a body, see `is_valid_text`)."""
    return data.decode(_BODY_ENCODING, "surrogateescape")


def is_valid_text(body: str) -> bool:
    """Whether `body` is valid Unicode text (no surrogate escapes from `decode_body`)."""
    try:
        body.encode(_BODY_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def printable_body(body: str) -> str:
    """`body` as storable UTF-8 text: each byte that was not UTF-8 (and any stray surrogate)
    becomes U+FFFD, as Spark's `make_valid_utf8` does."""
    try:
        raw = body.encode(_BODY_ENCODING, "surrogateescape")
    except UnicodeEncodeError:
        raw = body.encode(_BODY_ENCODING, "surrogatepass")
    return raw.decode(_BODY_ENCODING, "replace")
