"""Parse stream events into tweet rows; anything malformed becomes a dead letter with its reason.

The rules (shared with the Databricks job): the body is a JSON object; `id` is a decimal string or a
non-negative integer; `created_at` is ISO-8601 with a timezone; `like_count` is a required
non-negative integer; the other counts are optional non-negative integers (default 0);
`lang` and `query` are optional strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

import orjson
import polars as pl

from anomaly_pipeline.resources.event_stream import EventRecord
from anomaly_pipeline.streaming.events import COUNT_FIELDS

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


class MalformedEvent(ValueError):
    """An event that breaks the event rules; the message is the dead-letter reason."""


@dataclass(frozen=True)
class ParsedEvents:
    """Valid tweet rows (in stream order, duplicates kept) and dead letters of one batch."""

    tweets: pl.DataFrame
    dead_letters: pl.DataFrame


def parse_events(records: Iterable[EventRecord]) -> ParsedEvents:
    """Split a batch of events into tweet rows and dead letters."""
    rows: list[tuple] = []
    dead: list[tuple] = []
    for record in records:
        try:
            rows.append(parse_event_body(record.body))
        except MalformedEvent as problem:
            dead.append(
                (record.partition_id, record.sequence_number, record.enqueued_time, record.body, str(problem))
            )
    return ParsedEvents(
        tweets=pl.DataFrame(rows, schema=TWEET_COLUMNS, orient="row"),
        dead_letters=pl.DataFrame(dead, schema=DEAD_LETTER_COLUMNS, orient="row"),
    )


def parse_event_body(body: str) -> tuple:
    """One event body as a tuple in `TWEET_COLUMNS` order, or `MalformedEvent` naming the problem."""
    try:
        event = orjson.loads(body)
    except (TypeError, orjson.JSONDecodeError) as problem:
        raise MalformedEvent(f"body is not valid JSON: {problem}") from None
    if not isinstance(event, dict):
        raise MalformedEvent(f"body is a JSON {type(event).__name__}, not an object")
    tweet_id = _parse_tweet_id(event.get("id"))
    created_at = _parse_created_at(event.get("created_at"))
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


def _parse_created_at(raw) -> datetime:
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
    return moment.astimezone(timezone.utc)


def _parse_count(event: dict, name: str, required: bool) -> int:
    raw = event.get(name)
    if raw is None:
        if required:
            raise MalformedEvent(f"missing field '{name}'")
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise MalformedEvent(f"field '{name}' must be an integer, got {raw!r:.40}")
    if not 0 <= raw <= _MAX_TWEET_ID:
        raise MalformedEvent(f"field '{name}' must be a non-negative integer, got {raw}")
    return raw


def _optional_string(event: dict, name: str) -> str | None:
    raw = event.get(name)
    if raw is not None and not isinstance(raw, str):
        raise MalformedEvent(f"field '{name}' must be a string, got {type(raw).__name__}")
    return raw
