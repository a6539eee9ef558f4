"""SyntheticTweetSource and ReplayTweetSource: determinism, cursors, anomalies, parsing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from anomaly_pipeline.resources.local_tweet_sources import (
    HOUR_MS,
    ReplayTweetSource,
    SyntheticTweetSource,
    TweetFileError,
)
from anomaly_pipeline.resources.tweet_source import TWITTER_EPOCH_MS, Tweet, snowflake_id

UTC = timezone.utc
# One whole year of Monday-aligned weeks, so every hour of the week appears 52 times.
YEAR_START = datetime(2025, 1, 6, tzinfo=UTC)
YEAR_END = YEAR_START + timedelta(weeks=52)


@pytest.fixture(scope="module")
def source() -> SyntheticTweetSource:
    return SyntheticTweetSource()


@pytest.fixture(scope="module")
def year(source):
    """Hourly counts over the year, the anomalous hours, and the hour-of-week of each hour."""
    columns = source.interval_columns(YEAR_START, YEAR_END)
    first_hour = int(YEAR_START.timestamp()) // 3600
    hour_index = columns["created_at_ms"] // HOUR_MS - first_hour
    hours = 52 * 168
    counts = np.bincount(hour_index, minlength=hours)
    anomalies = {
        int(moment.timestamp()) // 3600 - first_hour: kind
        for moment, kind in source.anomalous_hours(YEAR_START, YEAR_END)
    }
    normal = np.array([h not in anomalies for h in range(hours)])
    hour_of_week = np.arange(hours) % 168
    typical = np.array([np.median(counts[(hour_of_week == w) & normal]) for w in range(168)])
    return {
        "columns": columns,
        "hour_index": hour_index,
        "counts": counts,
        "anomalies": anomalies,
        "normal": normal,
        "ratio": counts / typical[hour_of_week],
    }


def test_any_split_of_a_range_gives_the_same_tweets(source):
    start = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)
    end = datetime(2025, 3, 2, 4, 30, tzinfo=UTC)
    whole = source.fetch_interval(start, end)
    cuts = [
        start,
        datetime(2025, 3, 1, 22, 17, 23, 456000, tzinfo=UTC),
        datetime(2025, 3, 2, 0, 0, tzinfo=UTC),
        datetime(2025, 3, 2, 0, 0, 0, 1000, tzinfo=UTC),
        datetime(2025, 3, 2, 0, 0, 0, 1500, tzinfo=UTC),
        datetime(2025, 3, 2, 1, 13, 0, 250, tzinfo=UTC),
        datetime(2025, 3, 2, 3, 59, 59, 999000, tzinfo=UTC),
        end,
    ]
    pieces = [t for a, b in zip(cuts, cuts[1:]) for t in source.fetch_interval(a, b)]
    assert len(whole) > 100
    assert pieces == whole
    # A fresh instance with the same config, asked about one hour on its own, agrees too.
    hour = datetime(2025, 3, 2, 1, tzinfo=UTC)
    alone = SyntheticTweetSource().fetch_interval(hour, hour + timedelta(hours=1))
    assert alone == [t for t in whole if hour <= t.created_at < hour + timedelta(hours=1)]
    assert SyntheticTweetSource(seed=8).fetch_interval(start, end) != whole


def test_ids_are_snowflakes_increasing_with_time(source):
    tweets = source.fetch_interval(datetime(2025, 5, 5, tzinfo=UTC), datetime(2025, 5, 6, tzinfo=UTC))
    ids = [t.id for t in tweets]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [t.created_at for t in tweets] == sorted(t.created_at for t in tweets)
    for tweet in tweets:
        ms = int(tweet.created_at.timestamp() * 1000 + 0.5)
        assert tweet.id >> 22 == ms - TWITTER_EPOCH_MS
        assert tweet.created_at.tzinfo is not None
    assert snowflake_id(TWITTER_EPOCH_MS + 1, 3) == (1 << 22) | 3


def test_fetch_new_honours_since_id_and_now():
    source = SyntheticTweetSource(initial_lookback_minutes=90)
    now = datetime(2025, 6, 3, 14, 25, 31, 250000, tzinfo=UTC)
    history = source.fetch_interval(now - timedelta(hours=5), now)

    first = source.fetch_new(None, now)
    assert first == [t for t in history if t.created_at >= now - timedelta(minutes=90)]
    assert all(t.created_at < now for t in first)

    cursor = history[len(history) // 2]
    assert source.fetch_new(cursor.id, now) == history[len(history) // 2 + 1 :]
    assert source.fetch_new(history[-1].id, now) == []

    # Like the X API's recent search, an old cursor only reaches back recent_window_days.
    recent = SyntheticTweetSource(recent_window_days=0.25).fetch_new(1, now)
    assert recent == source.fetch_interval(now - timedelta(hours=6), now)

    # Polling every 7 minutes with the cursor replays the interval exactly: nothing lost or doubled.
    since_id, seen, tick = history[0].id, [history[0]], now - timedelta(hours=5)
    while tick < now:
        tick = min(now, tick + timedelta(minutes=7))
        batch = source.fetch_new(since_id, tick)
        assert all(t.created_at < tick for t in batch)
        seen.extend(batch)
        since_id = batch[-1].id if batch else since_id
    assert seen == history


def test_bursts_are_four_times_normal_and_drops_are_few(year):
    anomalies, ratio = year["anomalies"], year["ratio"]
    bursts = [h for h, kind in anomalies.items() if kind == "burst"]
    drops = [h for h, kind in anomalies.items() if kind == "drop"]
    # ~1/150 and ~1/300 of 8,736 hours.
    assert 35 <= len(bursts) <= 90 and 12 <= len(drops) <= 50
    assert min(ratio[bursts]) >= 3.0 and np.median(ratio[bursts]) >= 4.0
    assert max(ratio[drops]) <= 0.3
    normal_ratio = ratio[year["normal"]]
    assert 0.35 <= normal_ratio.min() and normal_ratio.max() <= 2.0
    hours = sorted(anomalies)
    assert all(b - a > 1 for a, b in zip(hours, hours[1:])), "two consecutive anomalous hours"


def test_burst_hours_have_boosted_likes(year):
    columns, hour_index, anomalies = year["columns"], year["hour_index"], year["anomalies"]
    original = ~columns["is_retweet"]
    burst = np.isin(hour_index, [h for h, k in anomalies.items() if k == "burst"])
    likes = columns["like_count"]
    assert likes[burst & original].mean() > 2 * likes[~burst & original].mean()


def test_daily_and_weekly_cycles(source, year):
    counts = year["counts"].reshape(52, 7, 24)
    by_hour = np.median(counts[:, :5, :], axis=(0, 1))
    assert by_hour[15] > 3 * by_hour[3]  # mid-afternoon UTC vs night
    weekday, weekend = np.median(counts[:, :4, :].sum(axis=2)), np.median(counts[:, 5:, :].sum(axis=2))
    assert weekend < 0.7 * weekday
    assert source.expected_rate(datetime(2025, 6, 4, 15, tzinfo=UTC)) == pytest.approx(120 * 1.6)


def test_metrics_are_heavy_tailed_and_plausible(year):
    c = year["columns"]
    original = ~c["is_retweet"]
    likes = c["like_count"][original]
    assert 0.8e6 < len(c["id"]) < 1.2e6
    assert np.mean(likes <= 5) > 0.8
    assert (likes >= 100).sum() > 100 and likes.max() >= 300
    assert np.mean(c["is_retweet"]) == pytest.approx(0.2, abs=0.01)
    for name in ("like_count", "retweet_count", "reply_count", "quote_count"):
        assert c[name].min() >= 0
        assert (c[name][c["is_retweet"]] == 0).all()
    assert c["retweet_count"].mean() < c["like_count"].mean()
    assert np.mean(c["lang"] == "en") == pytest.approx(0.9, abs=0.01)


def test_anomalous_hours_do_not_depend_on_the_range_asked(source):
    whole = source.anomalous_hours(YEAR_START, YEAR_END)
    middle = YEAR_START + timedelta(days=100, minutes=30)
    parts = source.anomalous_hours(YEAR_START, middle) + source.anomalous_hours(middle, YEAR_END)
    assert sorted(set(parts)) == whole
    assert all(m.minute == 0 and m.second == 0 and m.tzinfo for m, _ in whole)
    assert SyntheticTweetSource(burst_probability=0, drop_probability=0).anomalous_hours(
        YEAR_START, YEAR_END
    ) == []


# -------------------------------------------------------------------- replay


def _tweet(i: int, minute: int, **extra) -> dict:
    return {
        "id": str(1_800_000_000_000_000_000 + i),
        "created_at": f"2025-01-01T10:{minute:02d}:00.000Z",
        "like_count": i,
        "retweet_count": 0,
        "reply_count": 1,
        "quote_count": 0,
        "lang": "en",
        **extra,
    }


def test_replay_jsonl_with_x_api_metrics_and_retweets(tmp_path):
    path = tmp_path / "tweets.jsonl"
    rows = [
        _tweet(3, 30),
        _tweet(1, 10, text="RT @someone: hello"),
        {"id": 1_800_000_000_000_000_002, "created_at": "2025-01-01T10:20:00+00:00",
         "public_metrics": {"like_count": 7, "retweet_count": 2}, "lang": "ja"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    source = ReplayTweetSource(path=str(path))
    tweets = source.load()
    assert [t.like_count for t in tweets] == [1, 7, 3]
    assert [t.is_retweet for t in tweets] == [True, False, False]
    assert tweets[1] == Tweet(
        1_800_000_000_000_000_002, datetime(2025, 1, 1, 10, 20, tzinfo=UTC), 7, 2, 0, 0, "ja"
    )
    assert source.fetch_interval(
        datetime(2025, 1, 1, 10, 10, tzinfo=UTC), datetime(2025, 1, 1, 10, 30, tzinfo=UTC)
    ) == tweets[:2]
    now = datetime(2025, 1, 1, 10, 30, tzinfo=UTC)
    assert source.fetch_new(tweets[0].id, now) == tweets[1:2]
    assert source.fetch_new(None, now) == tweets[:2]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])  # utf-8-sig: a spreadsheet's export
def test_replay_csv(tmp_path, encoding):
    path = tmp_path / "tweets.csv"
    path.write_text(
        "id,created_at,like_count,retweet_count,reply_count,quote_count,lang,is_retweet\n"
        "11,2025-01-01T10:00:00Z,5,1,0,0,en,false\n"
        "12,2025-01-01T10:05:00,0,0,0,0,,true\n",
        encoding=encoding,
    )
    tweets = ReplayTweetSource(path=str(path)).load()
    assert [(t.id, t.like_count, t.lang, t.is_retweet) for t in tweets] == [
        (11, 5, "en", False),
        (12, 0, "und", True),
    ]
    assert tweets[1].created_at == datetime(2025, 1, 1, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("content", "suffix", "line", "message"),
    [
        ("id,created_at,like_count\n1,2025-01-01T00:00:00Z,1\n2,yesterday,1\n", ".csv", 3, "created_at"),
        ("id,created_at,like_count\n1,2025-01-01T00:00:00Z,-4\n", ".csv", 2, "like_count"),
        ("id,created_at,like_count\n1,2025-01-01T00:00:00Z,1\n1,2025-01-01T00:00:01Z,1\n", ".csv", 3, "duplicate id"),
        ('{"id": "1", "created_at": "2025-01-01T00:00:00Z"}\n{"id": "x", "created_at": "2025-01-01T00:00:00Z"}\n', ".jsonl", 2, "id"),
        ('{"id": "1", "created_at": "2025-01-01T00:00:00Z"}\n\n{not json\n', ".jsonl", 3, "invalid JSON"),
        ('{"created_at": "2025-01-01T00:00:00Z"}\n', ".jsonl", 1, "missing id"),
    ],
)
def test_replay_bad_row_names_file_and_line(tmp_path, content, suffix, line, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TweetFileError) as error:
        ReplayTweetSource(path=str(path)).load()
    assert str(path) in str(error.value)
    assert f"line {line}:" in str(error.value)
    assert message in str(error.value)
