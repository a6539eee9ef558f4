"""`XApiTweetSource` against a fake X API at the HTTP edge (tweepy and requests run for real)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
import requests

from anomaly_pipeline.resources import x_api
from anomaly_pipeline.resources.tweet_source import TweetSourceDeferred
from anomaly_pipeline.resources.x_api import XApiConfigError, XApiError, XApiTweetSource
from anomaly_pipeline_tests.cloud.fake_x_api import FakeXApi, Fault

TOKEN = "AAAAAAAAAAAAAAAAAAAAAFakeBearerTokenValue%2Fnot-real-123"
NOW = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start.timestamp()
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(NOW)
    monkeypatch.setattr(x_api, "_clock", fake.time)
    monkeypatch.setattr(x_api, "_sleep", fake.sleep)
    return fake


@pytest.fixture
def api(monkeypatch):
    fake = FakeXApi(TOKEN)
    real_new_client = XApiTweetSource._new_client

    def new_client(self):
        client = real_new_client(self)
        client.session.mount("https://", fake)
        return client

    monkeypatch.setattr(XApiTweetSource, "_new_client", new_client)
    return fake


def source(**overrides) -> XApiTweetSource:
    return XApiTweetSource(bearer_token=TOKEN, **overrides)


def test_paginates_until_exhausted_and_returns_ascending(api, clock):
    ids = [api.post(NOW - timedelta(minutes=50) + timedelta(seconds=10 * i), likes=i)
           for i in range(250)]
    cursor = ids[0] - 1

    tweets = source().fetch_new(since_id=cursor, now=NOW)

    assert [t.id for t in tweets] == ids
    assert [t.like_count for t in tweets] == list(range(250))
    assert all(t.created_at.tzinfo is not None and t.lang == "en" for t in tweets)
    assert len(api.requests) == 3  # 100 + 100 + 50, newest first
    first, second, third = ({k: v[0] for k, v in r.items()} for r in api.requests)
    assert first["query"] == "#Azure -is:retweet lang:en"
    assert first["since_id"] == str(cursor)
    assert first["max_results"] == "100"
    assert set(first["tweet.fields"].split(",")) == {
        "created_at", "public_metrics", "lang", "referenced_tweets"}
    assert "next_token" not in first and "next_token" in second and "next_token" in third
    assert second["since_id"] == str(cursor)  # the cursor holds on every page
    assert set(api.timeouts) == {10.0}  # request_timeout_seconds reaches requests


def test_metrics_and_retweet_marking(api, clock):
    plain = api.post(NOW - timedelta(minutes=3), likes=7)
    retweet = api.post(NOW - timedelta(minutes=2),
                       referenced=[{"type": "retweeted", "id": str(plain)}])
    quote = api.post(NOW - timedelta(minutes=1), referenced=[{"type": "quoted", "id": str(plain)}])

    tweets = {t.id: t for t in source(query="#Azure").fetch_new(since_id=plain - 1, now=NOW)}

    assert tweets[plain].like_count == 7 and not tweets[plain].is_retweet
    assert tweets[retweet].is_retweet
    assert not tweets[quote].is_retweet  # only retweets are marked; nothing is dropped
    assert api.requests[0]["query"] == ["#Azure"]


def test_no_cursor_starts_from_lookback_and_excludes_tweets_after_now(api, clock):
    api.post(NOW - timedelta(minutes=90))
    inside = api.post(NOW - timedelta(minutes=30))
    api.post(NOW + timedelta(seconds=30))  # created after `now`: left for the next tick

    tweets = source(initial_lookback_minutes=60).fetch_new(since_id=None, now=NOW)

    assert [t.id for t in tweets] == [inside]
    assert api.requests[0]["start_time"] == [(NOW - timedelta(minutes=60)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")]


def test_cursor_older_than_seven_days_falls_back_to_window_start(api, clock, caplog):
    old_cursor = api.post(NOW - timedelta(days=8))
    recent = api.post(NOW - timedelta(days=1))

    with caplog.at_level(logging.WARNING, logger=x_api.__name__):
        tweets = source(initial_lookback_minutes=60 * 24 * 30).fetch_new(old_cursor, now=NOW)

    assert [t.id for t in tweets] == [recent]
    assert "since_id" not in api.requests[0]
    assert "7-day" in caplog.text


def test_rate_limit_within_bound_waits_for_reset_and_completes(api, clock):
    ids = [api.post(NOW - timedelta(minutes=40) + timedelta(seconds=i)) for i in range(150)]
    reset = int(clock.now) + 20
    api.fail(2, Fault(429, {"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"}))

    tweets = source(max_rate_limit_wait_seconds=30).fetch_new(ids[0] - 1, now=NOW)

    assert [t.id for t in tweets] == ids
    assert clock.sleeps and 20 <= clock.sleeps[0] <= 22
    assert len(api.requests) == 3  # page 1, 429 on page 2, page 2 again


def test_rate_limit_beyond_bound_mid_pagination_defers_with_nothing_returned(api, clock):
    ids = [api.post(NOW - timedelta(minutes=40) + timedelta(seconds=i)) for i in range(150)]
    api.fail(2, Fault(429, {"x-rate-limit-reset": str(int(clock.now) + 600)}))

    with pytest.raises(TweetSourceDeferred) as raised:
        source(max_rate_limit_wait_seconds=30).fetch_new(ids[0] - 1, now=NOW)

    assert 590 <= raised.value.retry_after_seconds <= 602
    assert clock.sleeps == []
    assert TOKEN not in str(raised.value)


def test_rate_limit_without_reset_header_defers(api, clock):
    api.post(NOW - timedelta(minutes=1))
    api.fail(1, Fault(429))
    with pytest.raises(TweetSourceDeferred) as raised:
        source().fetch_new(None, now=NOW)
    assert raised.value.retry_after_seconds is None


def test_server_error_then_success_retries_with_backoff(api, clock):
    ids = [api.post(NOW - timedelta(minutes=5) + timedelta(seconds=i)) for i in range(3)]
    api.fail(1, Fault(503))
    api.fail(2, Fault(0, exception=requests.exceptions.ReadTimeout))
    api.fail(3, Fault(500))

    tweets = source(backoff_base_seconds=2).fetch_new(ids[0] - 1, now=NOW)

    assert [t.id for t in tweets] == ids
    assert clock.sleeps == [2, 4, 8]


def test_persistent_server_errors_raise_clear_error_after_bounded_retries(api, clock):
    api.post(NOW - timedelta(minutes=5))
    for number in range(1, 10):
        api.fail(number, Fault(503))

    with pytest.raises(XApiError, match="unavailable after 3 attempts.*503") as raised:
        source(max_retries=2).fetch_new(None, now=NOW)

    assert len(api.requests) == 3
    assert raised.value.__cause__ is None and raised.value.__context__ is not None
    assert TOKEN not in str(raised.value)


def test_no_tweet_lost_or_duplicated_across_ticks(api, clock):
    """Several ticks with a cursor; tweets arrive between ticks and during a deferred tick."""
    src = source(max_rate_limit_wait_seconds=30)
    cursor: int | None = None
    delivered: list[int] = []
    moment = NOW - timedelta(hours=3)
    for i in range(120):  # history before the first tick
        api.post(moment + timedelta(seconds=30 * i))
    moment += timedelta(hours=1)

    def tick(now: datetime) -> None:
        nonlocal cursor
        tweets = src.fetch_new(cursor, now=now)
        delivered.extend(t.id for t in tweets)
        if tweets:
            cursor = tweets[-1].id

    src = source(initial_lookback_minutes=240)
    tick(moment)
    for round_ in range(4):
        for i in range(130):  # more than a page arrives between ticks
            api.post(moment + timedelta(seconds=5 + 2 * i))
        moment += timedelta(minutes=10)
        if round_ == 1:
            # the tick is rate limited on its 2nd page, for longer than the source may wait
            api.fail(len(api.requests) + 2, Fault(429, {"x-rate-limit-reset": str(int(clock.now) + 900)}))
            with pytest.raises(TweetSourceDeferred):
                tick(moment)
            for i in range(40):  # still more arrive before the next tick
                api.post(moment + timedelta(seconds=1 + i))
            moment += timedelta(minutes=10)
        tick(moment)

    expected = sorted(i for i in api.tweets if api._created(i) < moment)
    assert delivered == expected  # each tweet exactly once, in id order
    assert len(set(delivered)) == len(delivered) == 120 + 4 * 130 + 40


def test_fetch_interval_uses_start_and_end_time(api, clock):
    hour = (NOW - timedelta(hours=2)).replace(minute=0, second=0)
    api.post(hour - timedelta(seconds=1))
    inside = [api.post(hour + timedelta(minutes=m)) for m in range(0, 60, 7)]
    api.post(hour + timedelta(hours=1))

    tweets = source().fetch_interval(hour, hour + timedelta(hours=1))

    assert [t.id for t in tweets] == inside
    params = {k: v[0] for k, v in api.requests[0].items()}
    assert params["start_time"] == hour.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert params["end_time"] == (hour + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "since_id" not in params


def test_fetch_interval_outside_the_seven_day_window_names_the_limit(api, clock):
    start = NOW - timedelta(days=8)
    with pytest.raises(XApiError, match="last 7 days"):
        source().fetch_interval(start, start + timedelta(hours=1))
    with pytest.raises(XApiError, match="10 seconds"):
        source().fetch_interval(NOW - timedelta(minutes=30), NOW + timedelta(minutes=30))
    assert api.requests == []


def test_token_never_in_repr_logs_or_exceptions(api, clock, caplog):
    src = source()
    assert TOKEN not in repr(src) and TOKEN not in str(src)
    api.post(NOW - timedelta(minutes=1))
    api.fail(2, Fault(429, {"x-rate-limit-reset": str(int(clock.now) + 9999)}))
    api.fail(3, Fault(0, exception=requests.exceptions.ConnectTimeout))
    api.fail(4, Fault(0, exception=requests.exceptions.ConnectTimeout))
    messages = []
    with caplog.at_level(logging.DEBUG):
        src.fetch_new(None, now=NOW)  # tweepy logs request headers at DEBUG
        for _ in range(2):
            with pytest.raises((TweetSourceDeferred, XApiError)) as raised:
                source(max_retries=1).fetch_new(None, now=NOW)
            messages.append(repr(raised.value) + str(raised.value))
        with pytest.raises(XApiError) as rejected:
            XApiTweetSource(bearer_token="wrong-" + TOKEN).fetch_new(None, now=NOW)
        messages.append(str(rejected.value))
    assert "Bearer <redacted>" in caplog.text  # the header was logged, redacted
    assert "401" in messages[-1] and "X_BEARER_TOKEN" in messages[-1]
    for text in [caplog.text, *messages]:
        assert TOKEN not in text


@pytest.mark.parametrize("token", ["", "   "])
def test_missing_token_fails_fast_naming_the_variable(api, clock, token):
    with pytest.raises(XApiConfigError, match="X_BEARER_TOKEN"):
        XApiTweetSource(bearer_token=token).fetch_new(None, now=NOW)
    assert api.requests == []


def _chain(error: BaseException | None) -> str:
    """Every message in an exception chain (Dagster wraps resource errors)."""
    texts = []
    while error is not None:
        texts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


def test_unset_or_empty_env_var_fails_at_resource_init_naming_the_variable(monkeypatch):
    resource = XApiTweetSource(bearer_token=dg.EnvVar("X_BEARER_TOKEN"))
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    with pytest.raises(Exception) as unset:
        with dg.build_resources({"tweets": resource}):
            pass
    assert "X_BEARER_TOKEN" in _chain(unset.value)

    monkeypatch.setenv("X_BEARER_TOKEN", "  ")
    with pytest.raises(Exception) as empty:
        with dg.build_resources({"tweets": resource}):
            pass
    assert "X_BEARER_TOKEN" in _chain(empty.value)

    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with dg.build_resources({"tweets": resource}) as built:
        assert built.tweets.bearer_token == TOKEN
        assert TOKEN not in repr(built.tweets) and TOKEN not in str(built.tweets)
