"""Tweet sources that need no account: deterministic synthetic tweets and replay of a file.

`SyntheticTweetSource` models the hourly volume of a hashtag (daily and weekly cycles, noise, and
rare known "burst"/"drop" hours) so the detector has something realistic, and testable, to find.
`ReplayTweetSource` replays tweets saved in a CSV or JSONL file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from pydantic import Field

from anomaly_pipeline.resources.tweet_source import (
    SNOWFLAKE_TIME_SHIFT,
    TWITTER_EPOCH_MS,
    Tweet,
    TweetSource,
    snowflake_time_ms,
)

HOUR_MS = 3_600_000

_U64 = np.uint64
_MASK64 = (1 << 64) - 1
_OTHER_LANGS = ("ja", "es", "de", "fr", "pt")


def _to_ms(moment: datetime) -> int:
    """Unix milliseconds of `moment`, rounded up (tweets carry whole milliseconds, so a tweet at
    millisecond m is at or after `moment` exactly when m >= this). Naive datetimes are UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 - (-delta.microseconds // 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, vectorised over uint64 (wrapping arithmetic)."""
    z = values + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def _unit(values: np.ndarray) -> np.ndarray:
    """uint64 hashes -> floats uniform in [0, 1)."""
    return (values >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


class SyntheticTweetSource(TweetSource):
    """Deterministic synthetic tweets for a hashtag, with rare known anomalous hours.

    Each UTC clock hour H is generated on its own from an RNG seeded by (`seed`, H) only, so any
    hour, and any split of a time range into intervals, always gives exactly the same tweets.
    Expected volume = `base_rate_per_hour` x daily cycle (low at night UTC, peak mid-afternoon) x
    weekly cycle (weekends lower) x event factor (1; x4..x6 in a "burst" hour, with likes boosted;
    x0.1 in a "drop" hour). The hourly count is negative-binomial around that rate. Anomalous hours
    are chosen by a seeded hash of H, never two consecutive ones; `anomalous_hours` lists them.
    Ids are Twitter snowflakes, so they increase with `created_at`.
    """

    seed: int = Field(default=7, ge=0, description="Seed of the whole synthetic history.")
    base_rate_per_hour: float = Field(
        default=120.0, gt=0, description="Mean tweets per hour before daily/weekly cycles."
    )
    burst_probability: float = Field(
        default=1 / 150, ge=0, le=0.5, description="Chance that an hour is a burst (x4..x6 volume)."
    )
    drop_probability: float = Field(
        default=1 / 300, ge=0, le=0.5, description="Chance that an hour is a drop (x0.1 volume)."
    )
    retweet_share: float = Field(
        default=0.2, ge=0, le=1, description="Share of tweets that are retweets (is_retweet=True)."
    )
    other_language_share: float = Field(
        default=0.1, ge=0, le=1, description="Share of tweets whose lang is not 'en'."
    )
    dispersion: float = Field(
        default=60.0,
        gt=0,
        description="Negative-binomial shape of hourly counts: variance = mean + mean^2/shape.",
    )
    initial_lookback_minutes: int = Field(
        default=60, ge=0, description="How far back `fetch_new` starts when there is no cursor yet."
    )
    recent_window_days: float = Field(
        default=7.0,
        gt=0,
        description="`fetch_new` never looks further back than this, like the X API's recent "
        "search (7 days); older history is reachable with `fetch_interval`.",
    )

    # ---------------------------------------------------------------- public API

    def fetch_new(self, since_id: int | None, now: datetime) -> list[Tweet]:
        """Tweets with id > `since_id` created before `now` (from `now - initial_lookback_minutes`
        when `since_id` is None), ascending by id; at most `recent_window_days` back."""
        end_ms = _to_ms(now)
        oldest_ms = end_ms - int(self.recent_window_days * 86_400_000)
        if since_id is None:
            start_ms = end_ms - self.initial_lookback_minutes * 60_000
            return self._tweets(max(start_ms, oldest_ms), end_ms)
        tweets = self._tweets(max(snowflake_time_ms(since_id), oldest_ms), end_ms)
        first = next((i for i, t in enumerate(tweets) if t.id > since_id), len(tweets))
        return tweets[first:]

    def fetch_interval(self, start: datetime, end: datetime) -> list[Tweet]:
        """Every tweet created in [start, end), ascending by id."""
        return self._tweets(_to_ms(start), _to_ms(end))

    def interval_columns(self, start: datetime, end: datetime) -> dict[str, np.ndarray]:
        """The same tweets as `fetch_interval`, as numpy columns (fast path for bulk backfills).

        Keys: id (int64), created_at_ms (int64, Unix ms), like_count, retweet_count, reply_count,
        quote_count (int64), lang (object), is_retweet (bool).
        """
        return self._columns(_to_ms(start), _to_ms(end))

    def anomalous_hours(self, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
        """(hour start, "burst" | "drop") for every anomalous hour overlapping [start, end)."""
        first, last = self._hour_range(_to_ms(start), _to_ms(end))
        hours = np.arange(first, last, dtype=np.int64)
        kind, _ = self._events(hours)
        labels = {1: "burst", 2: "drop"}
        return [(_from_ms(int(h) * HOUR_MS), labels[int(k)]) for h, k in zip(hours, kind) if k]

    def expected_rate(self, hour_start: datetime) -> float:
        """Expected tweets in the hour starting at `hour_start`, event factor included."""
        hour = np.array([_to_ms(hour_start) // HOUR_MS], dtype=np.int64)
        return float(self._rates(hour)[0])

    # ---------------------------------------------------------------- model

    def _hour_range(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        if start_ms < TWITTER_EPOCH_MS:
            raise ValueError("SyntheticTweetSource cannot generate tweets before 2010-11-04")
        return start_ms // HOUR_MS, -(-end_ms // HOUR_MS)

    def _uniform(self, hours: np.ndarray, stream: int) -> np.ndarray:
        """A uniform in [0, 1) per hour from a hash of (seed, stream, hour)."""
        key = _splitmix64(np.array([(self.seed * 0x100000001B3 + stream) & _MASK64], dtype=_U64))
        return _unit(_splitmix64(hours.astype(np.int64).view(_U64) ^ key))

    def _events(self, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kind, factor) per hour: kind 0 normal, 1 burst, 2 drop; never two consecutive."""
        p_burst, p_any = self.burst_probability, self.burst_probability + self.drop_probability
        u = self._uniform(hours, 1)
        previous = self._uniform(hours - 1, 1) < p_any
        kind = np.where((u < p_any) & ~previous, np.where(u < p_burst, 1, 2), 0)
        factor = np.where(kind == 1, 4.0 + 2.0 * self._uniform(hours, 2), 1.0)
        factor = np.where(kind == 2, 0.1, factor)
        return kind, factor

    def _rates(self, hours: np.ndarray) -> np.ndarray:
        hour_of_day = hours % 24
        day_of_week = (hours // 24 + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        daily = 1.0 + 0.6 * np.cos(2 * np.pi * (hour_of_day - 15) / 24)
        weekly = np.select([day_of_week == 4, day_of_week >= 5], [0.9, 0.55], 1.0)
        _, factor = self._events(hours)
        return self.base_rate_per_hour * daily * weekly * factor

    def _columns(self, start_ms: int, end_ms: int) -> dict[str, np.ndarray]:
        first, last = self._hour_range(start_ms, end_ms)
        hours = np.arange(first, max(first, last), dtype=np.int64)
        rates = self._rates(hours)
        kinds, _ = self._events(hours)
        k = self.dispersion
        offsets, uniforms, normals, boosts = [], [], [], []
        for hour, rate, kind in zip(hours.tolist(), rates.tolist(), kinds.tolist()):
            rng = np.random.default_rng([self.seed, hour])
            n = int(rng.negative_binomial(k, k / (k + rate)))
            offsets.append(np.sort(rng.integers(0, HOUR_MS, n)) + hour * HOUR_MS)
            uniforms.append(rng.random((n, 5)))
            normals.append(rng.standard_normal(n))
            boosts.append(np.full(n, 1.0 if kind == 1 else 0.0))
        if not offsets:
            offsets, uniforms, normals, boosts = [np.zeros(0, np.int64)], [np.zeros((0, 5))], [], []
        ms = np.concatenate(offsets).astype(np.int64)
        u = np.concatenate(uniforms)
        z = np.concatenate(normals) if normals else np.zeros(0)
        boost = np.concatenate(boosts) if boosts else np.zeros(0)

        keep = (ms >= start_ms) & (ms < end_ms)
        ms, u, z, boost = ms[keep], u[keep], z[keep], boost[keep]

        index = np.arange(len(ms))
        new_ms = np.ones(len(ms), dtype=bool)
        new_ms[1:] = ms[1:] != ms[:-1]
        sequence = index - np.maximum.accumulate(np.where(new_ms, index, 0))
        ids = ((ms - TWITTER_EPOCH_MS) << SNOWFLAKE_TIME_SHIFT) | sequence

        is_retweet = u[:, 0] < self.retweet_share
        original = ~is_retweet
        # Discrete lognormal likes: ~60% zero, ~90% <= 5, a few in the hundreds or thousands.
        likes = np.floor(np.exp(0.3 + 1.0 * boost + 1.35 * z)).astype(np.int64) - 1
        likes = np.where(original, np.maximum(likes, 0), 0)
        retweets = np.floor(likes * (0.05 + 0.25 * u[:, 2]) + (u[:, 2] < 0.05)).astype(np.int64)
        replies = np.floor(-np.log1p(-u[:, 3]) * (0.2 + 0.05 * likes)).astype(np.int64)
        quotes = np.floor(-np.log1p(-u[:, 4]) * (0.02 + 0.01 * likes)).astype(np.int64)
        lang_pick = u[:, 1] / max(self.other_language_share, 1e-12)
        langs = np.array(("en",) + _OTHER_LANGS, dtype=object)
        lang_index = np.where(
            u[:, 1] < self.other_language_share,
            1 + np.minimum((lang_pick * len(_OTHER_LANGS)).astype(np.int64), len(_OTHER_LANGS) - 1),
            0,
        )
        return {
            "id": ids,
            "created_at_ms": ms,
            "like_count": likes,
            "retweet_count": np.where(original, retweets, 0),
            "reply_count": np.where(original, replies, 0),
            "quote_count": np.where(original, quotes, 0),
            "lang": langs[lang_index],
            "is_retweet": is_retweet,
        }

    def _tweets(self, start_ms: int, end_ms: int) -> list[Tweet]:
        if end_ms <= start_ms:
            return []
        c = self._columns(start_ms, end_ms)
        utc = timezone.utc
        return [
            Tweet(i, datetime.fromtimestamp(m / 1000, utc), lk, rt, rp, qt, lg, bool(r))
            for i, m, lk, rt, rp, qt, lg, r in zip(
                c["id"].tolist(),
                c["created_at_ms"].tolist(),
                c["like_count"].tolist(),
                c["retweet_count"].tolist(),
                c["reply_count"].tolist(),
                c["quote_count"].tolist(),
                c["lang"].tolist(),
                c["is_retweet"].tolist(),
            )
        ]


# -------------------------------------------------------------------- replay


class TweetFileError(ValueError):
    """A tweet file row that cannot be read; the message names the file and the line."""


_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}


class ReplayTweetSource(TweetSource):
    """Replays tweets saved in a CSV or JSONL file (chosen by the `.csv` suffix; else JSONL).

    Fields per row: id, created_at (ISO-8601; no offset means UTC), like_count, retweet_count,
    reply_count, quote_count, lang, and optionally is_retweet or a text starting with "RT @".
    In JSONL the counts may also sit in a `public_metrics` object, as the X API returns them.
    Missing counts are 0 and a missing lang is "und". A bad row raises `TweetFileError` naming
    the file and line.
    """

    path: str = Field(description="The CSV or JSONL file of tweets to replay.")
    initial_lookback_minutes: int = Field(
        default=60, ge=0, description="How far back `fetch_new` starts when there is no cursor yet."
    )

    def fetch_new(self, since_id: int | None, now: datetime) -> list[Tweet]:
        """Tweets with id > `since_id` (or created since `now - initial_lookback_minutes` when
        `since_id` is None) and created before `now`, ascending by id."""
        now = _aware(now)
        if since_id is None:
            start = now - timedelta(minutes=self.initial_lookback_minutes)
            return [t for t in self.load() if start <= t.created_at < now]
        return [t for t in self.load() if t.id > since_id and t.created_at < now]

    def fetch_interval(self, start: datetime, end: datetime) -> list[Tweet]:
        """Every tweet created in [start, end), ascending by id."""
        start, end = _aware(start), _aware(end)
        return [t for t in self.load() if start <= t.created_at < end]

    def load(self) -> list[Tweet]:
        """Every tweet in the file, ascending by id."""
        path = Path(self.path)
        if not path.exists():
            raise FileNotFoundError(f"tweet file not found: {path}")
        tweets: list[Tweet] = []
        seen: dict[int, int] = {}
        for line, row in self._rows(path):
            try:
                tweet = _parse_row(row)
            except (KeyError, ValueError, TypeError) as error:
                raise TweetFileError(f"{path}, line {line}: {error}") from None
            if tweet.id in seen:
                raise TweetFileError(
                    f"{path}, line {line}: duplicate id {tweet.id} (first on line {seen[tweet.id]})"
                )
            seen[tweet.id] = line
            tweets.append(tweet)
        tweets.sort(key=lambda t: t.id)
        return tweets

    def _rows(self, path: Path) -> Iterator[tuple[int, dict]]:
        # utf-8-sig: a file saved by a spreadsheet starts with a byte-order mark
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(handle)
                for row in reader:
                    yield reader.line_num, row
                return
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as error:
                    raise TweetFileError(f"{path}, line {number}: invalid JSON ({error})") from None
                if not isinstance(row, dict):
                    raise TweetFileError(f"{path}, line {number}: expected a JSON object")
                yield number, row


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _parse_row(row: dict) -> Tweet:
    metrics = row.get("public_metrics") or {}

    def count(name: str) -> int:
        value = row.get(name, metrics.get(name))
        if value is None or value == "":
            return 0
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        number = int(value)
        if number < 0:
            raise ValueError(f"{name} must not be negative, got {number}")
        return number

    for name in ("id", "created_at"):
        if row.get(name) in (None, ""):
            raise ValueError(f"missing {name}")
    raw_id = row["id"]
    if isinstance(raw_id, bool) or (isinstance(raw_id, float)):
        raise ValueError(f"id must be an integer or a decimal string, got {raw_id!r}")
    try:
        tweet_id = int(str(raw_id).strip())
    except ValueError:
        raise ValueError(f"id must be an integer, got {raw_id!r}") from None
    try:
        created_at = _aware(datetime.fromisoformat(str(row["created_at"]).strip()))
    except ValueError:
        raise ValueError(f"created_at is not ISO-8601: {row['created_at']!r}") from None
    flag = row.get("is_retweet")
    if flag is None or flag == "":
        is_retweet = str(row.get("text") or "").startswith("RT @")
    elif isinstance(flag, bool):
        is_retweet = flag
    elif str(flag).strip().lower() in _TRUE:
        is_retweet = True
    elif str(flag).strip().lower() in _FALSE:
        is_retweet = False
    else:
        raise ValueError(f"is_retweet must be true or false, got {flag!r}")
    return Tweet(
        id=tweet_id,
        created_at=created_at.astimezone(timezone.utc),
        like_count=count("like_count"),
        retweet_count=count("retweet_count"),
        reply_count=count("reply_count"),
        quote_count=count("quote_count"),
        lang=str(row.get("lang") or "und"),
        is_retweet=is_retweet,
    )
