"""Parse stream events into tweet rows; anything malformed becomes a dead letter with its reason.

The rules (shared with the Databricks job): the body is UTF-8 text holding a JSON object; `id` is a
decimal string or a non-negative integer; `created_at` is ISO-8601 with a timezone, not before
`PARTITIONS_START` and not more than `MAX_CREATED_AHEAD` after the event was enqueued; `like_count`
is a required integer in 0..`MAX_COUNT`; the other counts are optional integers in that range
(default 0); `lang` and `query` are optional strings. An event breaking any rule never stops the
stream: it is returned as a dead letter with the first rule it breaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

import orjson
import polars as pl

from anomaly_pipeline.partitions import FIRST_HOUR
from anomaly_pipeline.resources.event_stream import EventRecord
from anomaly_pipeline.streaming.events import COUNT_FIELDS, MAX_COUNT, is_valid_text, printable_body

TWEET_COLUMNS = {
    "tweet_id": pl.Int64,
    "created_at": pl.Datetime("us", "UTC"),
    "like_count": pl.Int64,
    "retweet_count": pl.Int64,
    "reply_count": pl.Int64,
    "quote_count": pl.Int64,
    "lang": pl.String,
    "query": pl.String,
}
DEAD_LETTER_COLUMNS = {
    "partition_id": pl.String,
    "sequence_number": pl.Int64,
    "enqueued_time": pl.Datetime("us", "UTC"),
    "body": pl.String,
    "reason": pl.String,
}
_MAX_TWEET_ID = 2**63 - 1
MAX_CREATED_AHEAD = timedelta(days=1)
"""How far after its event was enqueued a tweet's `created_at` may lie. A tweet is fetched after
it was created, so only clock skew (seconds) puts it ahead; a day of slack is generous."""


class MalformedEvent(ValueError):
    """An event that breaks the event rules; the message is the dead-letter reason."""


@dataclass(frozen=True)
class EventBounds:
    """The range a tweet's `created_at` must lie in: from `earliest` (the first partition,
    `PARTITIONS_START`) to `max_ahead` after its event was enqueued. Relative to the enqueued time
    rather than the clock, so replaying a batch accepts and rejects exactly the same events."""

    earliest: datetime = FIRST_HOUR
    max_ahead: timedelta = MAX_CREATED_AHEAD


@dataclass(frozen=True)
class ParsedEvents:
    """Valid tweet rows (in stream order, duplicates kept) and dead letters of one batch."""

    tweets: pl.DataFrame
    dead_letters: pl.DataFrame


def parse_events(records: Iterable[EventRecord], bounds: EventBounds = EventBounds()) -> ParsedEvents:
    """Split a batch of events into tweet rows and dead letters (their body stored as valid text)."""
    rows: list[tuple] = []
    dead: list[tuple] = []
    for record in records:
        try:
            rows.append(parse_event_body(record.body, record.enqueued_time, bounds))
        except MalformedEvent as problem:
            body = printable_body(record.body)
            dead.append((record.partition_id, record.sequence_number, record.enqueued_time, body, str(problem)))
    return ParsedEvents(
        tweets=pl.DataFrame(rows, schema=TWEET_COLUMNS, orient="row"),
        dead_letters=pl.DataFrame(dead, schema=DEAD_LETTER_COLUMNS, orient="row"),
    )


def parse_event_body(
    body: str, enqueued_time: datetime | None = None, bounds: EventBounds = EventBounds()
) -> tuple:
    """One event body as a tuple in `TWEET_COLUMNS` order, or `MalformedEvent` naming the problem.

    `enqueued_time` (default: now) is when the stream received the event, the reference of the
    `created_at` upper bound.
    """
    try:
        event = orjson.loads(body)
    except (TypeError, orjson.JSONDecodeError) as problem:
        if isinstance(body, str) and not is_valid_text(body):
            raise MalformedEvent("body is not valid UTF-8") from None
        raise MalformedEvent(f"body is not valid JSON: {problem}") from None
    if not isinstance(event, dict):
        raise MalformedEvent(f"body is a JSON {type(event).__name__}, not an object")
    tweet_id = _parse_tweet_id(event.get("id"))
    received = enqueued_time or datetime.now(timezone.utc)
    created_at = _parse_created_at(event.get("created_at"), received, bounds)
    counts = [_parse_count(event, name, required=(name == "like_count")) for name in COUNT_FIELDS]
    lang = _optional_string(event, "lang")
    query = _optional_string(event, "query")
    return (tweet_id, created_at, *counts, lang, query)


def _parse_tweet_id(raw) -> int:
    if raw is None:
        raise MalformedEvent("missing field 'id'")
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise MalformedEvent(f"field 'id' must be a decimal string or integer, got {type(raw).__name__}")
    if isinstance(raw, str) and not (raw.isascii() and raw.isdigit()):
        raise MalformedEvent(f"field 'id' is not a decimal number: {raw[:40]!r}")
    tweet_id = int(raw)
    if not 0 <= tweet_id <= _MAX_TWEET_ID:
        raise MalformedEvent(f"field 'id' is out of range: {raw}")
    return tweet_id


def _parse_created_at(raw, enqueued_time: datetime, bounds: EventBounds) -> datetime:
    if raw is None:
        raise MalformedEvent("missing field 'created_at'")
    if not isinstance(raw, str):
        raise MalformedEvent(f"field 'created_at' must be an ISO-8601 string, got {type(raw).__name__}")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise MalformedEvent(f"field 'created_at' is not an ISO-8601 timestamp: {raw[:40]!r}") from None
    if moment.tzinfo is None:
        raise MalformedEvent(f"field 'created_at' has no timezone: {raw[:40]!r}")
    # compared before the UTC conversion, which overflows for the first and last hours of the calendar
    if moment < bounds.earliest:
        raise MalformedEvent(
            f"field 'created_at' is before PARTITIONS_START ({bounds.earliest:%Y-%m-%dT%H:%M:%SZ}): "
            f"{raw[:40]}"
        )
    if moment > enqueued_time + bounds.max_ahead:
        hours = int(bounds.max_ahead.total_seconds() // 3600)
        raise MalformedEvent(
            f"field 'created_at' is more than {hours} hours after the event was enqueued: {raw[:40]}"
        )
    return moment.astimezone(timezone.utc)


def _parse_count(event: dict, name: str, required: bool) -> int:
    raw = event.get(name)
    if raw is None:
        if required:
            raise MalformedEvent(f"missing field '{name}'")
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise MalformedEvent(f"field '{name}' must be an integer, got {raw!r:.40}")
    if raw < 0:
        raise MalformedEvent(f"field '{name}' must be a non-negative integer, got {raw}")
    if raw > MAX_COUNT:
        raise MalformedEvent(f"field '{name}' is above {MAX_COUNT}, the largest count accepted: {raw}")
    return raw


def _optional_string(event: dict, name: str) -> str | None:
    raw = event.get(name)
    if raw is not None and not isinstance(raw, str):
        raise MalformedEvent(f"field '{name}' must be a string, got {type(raw).__name__}")
    return raw
