"""Poison events never stop the stream: each class becomes a dead letter with its reason, the good
events of the same batch land, and the next run proceeds. Sums never overflow."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from polars.exceptions import InvalidOperationError

from anomaly_pipeline.partitions import FIRST_HOUR, hour_start
from anomaly_pipeline.streaming.aggregate import hourly_metrics
from anomaly_pipeline.streaming.events import MAX_COUNT
from anomaly_pipeline.tables import DEAD_LETTER_EVENTS, HOURLY_TWEET_METRICS, TWEETS
from anomaly_pipeline_tests.conftest import read_table
from anomaly_pipeline_tests.resources.raw_producer import publish_raw

NOW = datetime.now(timezone.utc)
GOOD_HOUR = hour_start(NOW) - timedelta(days=1)
GOOD_TIME = (GOOD_HOUR + timedelta(minutes=7)).isoformat()


def event(tweet_id: int, created_at: str = GOOD_TIME, like_count: int = 1, **fields) -> str:
    return json.dumps({"id": str(tweet_id), "created_at": created_at, "like_count": like_count, **fields})


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# body -> a part of its dead-letter reason
POISON = {
    event(101, "0001-01-01T00:00:00+01:00"): "is before PARTITIONS_START",  # UTC conversion overflows
    event(102, "9999-12-31T23:59:59-01:00"): "hours after the event was enqueued",  # overflows too
    event(103, "9999-06-01T00:00:00Z"): "hours after the event was enqueued",
    event(104, iso(NOW + timedelta(days=3))): "hours after the event was enqueued",
    event(105, iso(FIRST_HOUR - timedelta(seconds=1))): "is before PARTITIONS_START",
    event(106, like_count=2**63 - 1): f"'like_count' is above {MAX_COUNT}",
    event(107, retweet_count=MAX_COUNT + 1): f"'retweet_count' is above {MAX_COUNT}",
    event(108, quote_count=2**64): "'quote_count' must be an integer",
    event(109, lang="\ud800"): "body is not valid JSON",  # a lone surrogate escape
}
# bodies another producer stored as bytes that are not UTF-8 (as TEXT and as BLOB)
NOT_UTF8 = [event(110, lang="x").replace('"x"', '"\udcff"').encode("utf-8", "surrogateescape"), b"\xc3\x28"]


def good_events(ids) -> list[tuple[str, str]]:
    return [(str(i), event(i, like_count=i)) for i in ids]


def run_engine(resources):
    return resources["stream_engine"].process_available(resources["event_stream"], resources["delta_store"])


def test_each_class_of_poison_event_is_a_dead_letter_and_the_good_events_of_its_batch_land(resources):
    stream = resources["event_stream"]
    stream.publish([("poison", body) for body in POISON])
    for as_blob in (False, True):
        publish_raw(stream, int(stream.partition_for_key("poison")), NOT_UTF8, as_blob=as_blob)
    publish_raw(stream, 0, [event(11, like_count=11).encode()], as_blob=True)  # valid UTF-8 BLOB: fine
    stream.publish(good_events(range(1, 11)))

    report = run_engine(resources)  # one batch: the poison first, the good events after it

    assert report.batches == 1 and report.events_read == len(POISON) + 2 * len(NOT_UTF8) + 11
    assert report.dead_letters == len(POISON) + 2 * len(NOT_UTF8)
    dead = read_table(resources, DEAD_LETTER_EVENTS)
    reasons = dict(zip(dead["body"], dead["reason"]))
    for body, reason in POISON.items():
        assert reason in reasons.get(body, ""), body
    stored_not_utf8 = [body.decode("utf-8", "replace") for body in NOT_UTF8]
    assert dead.filter(pl.col("body").is_in(stored_not_utf8)).get_column("reason").to_list() == [
        "body is not valid UTF-8"
    ] * 4
    assert '"\ufffd"' in stored_not_utf8[0]  # the invalid byte is stored as U+FFFD

    hourly = read_table(resources, HOURLY_TWEET_METRICS)
    assert hourly.select("hour", "tweet_count", "like_sum").rows() == [(GOOD_HOUR, 11, sum(range(1, 12)))]
    assert sorted(read_table(resources, TWEETS)["tweet_id"]) == list(range(1, 12))
    assert sum(stream.lag().values()) == 0

    # the next run proceeds: new events land, the dead letters stay as they are
    stream.publish(good_events([12, 13]))
    report = run_engine(resources)
    assert report.events_read == 2 and report.dead_letters == 0
    assert read_table(resources, HOURLY_TWEET_METRICS)["tweet_count"].to_list() == [13]
    assert read_table(resources, DEAD_LETTER_EVENTS).height == len(POISON) + 2 * len(NOT_UTF8)


def test_counts_beyond_the_bound_are_dead_letters_and_sums_do_not_wrap(resources):
    stream = resources["event_stream"]
    huge = [(str(i), event(i, like_count=2**63 - 1)) for i in (1, 2)]
    normal = [(str(i), event(i, like_count=i)) for i in range(3, 53)]
    largest = [(str(i), event(i, created_at=iso(GOOD_HOUR + timedelta(hours=1)), like_count=MAX_COUNT))
               for i in range(60, 64)]
    stream.publish(huge + normal + largest)
    report = run_engine(resources)

    assert report.dead_letters == 2
    rows = {row["hour"]: row for row in read_table(resources, HOURLY_TWEET_METRICS).iter_rows(named=True)}
    assert rows[GOOD_HOUR]["tweet_count"] == 50 and rows[GOOD_HOUR]["like_sum"] == sum(range(3, 53))
    # four tweets at the bound sum exactly, beyond 32 bits
    assert rows[GOOD_HOUR + timedelta(hours=1)]["like_sum"] == 4 * MAX_COUNT


def test_a_sum_beyond_int64_raises_instead_of_wrapping():
    """Rows stored before counts were bounded cannot wrap a sum silently either."""
    tweets = pl.DataFrame(
        {"hour": [GOOD_HOUR] * 3, "like_count": [2**63 - 1, 2**63 - 1, 5],
         "retweet_count": [0] * 3, "reply_count": [0] * 3, "quote_count": [0] * 3}
    )
    with pytest.raises(InvalidOperationError, match="like_count"):
        hourly_metrics(tweets)
