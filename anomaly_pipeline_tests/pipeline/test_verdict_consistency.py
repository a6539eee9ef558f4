"""One verdict per hour, however it is judged: live hour by hour, in backfills of any range, again
after more data arrives, and by `anomaly-pipeline detect --mode stream` on the same series."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomaly_pipeline.assets.anomalies import DetectionConfig, judge_hours, metric_grid
from anomaly_pipeline.partitions import hours_between
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS
from anomaly_pipeline_tests.conftest import utc

START = utc(2026, 3, 2)
HOURS = 24 * 7 * 5  # five weeks of metrics
VERDICT_COLUMNS = [
    "hour", "metric", "status", "value", "expected_value", "upper_margin", "lower_margin",
    "is_anomaly", "severity", "period", "points_used",
]  # fmt: skip
SCRIPT = Path(sys.executable).parent / "anomaly-pipeline"


def _metrics(hours: list, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(len(hours))
    counts = rng.poisson(30 * (1 + 0.5 * np.sin(2 * np.pi * t / 24))).astype(np.int64)
    if t.size > 500:
        counts[500] *= 5  # a burst
        counts[[90, 91]] = 0  # hours without tweets: no average
    likes = np.where(counts > 0, counts * rng.gamma(2.0, 2.0, t.size), 0).round().astype(np.int64)
    return pl.DataFrame(
        {
            "hour": pl.Series(hours, dtype=pl.Datetime("us", "UTC")),
            "tweet_count": counts,
            "like_sum": likes,
            "avg_likes": pl.Series(np.where(counts > 0, likes / np.maximum(counts, 1), np.nan)).fill_nan(None),
            "retweet_sum": 0,
            "reply_sum": 0,
            "quote_sum": 0,
        }
    )


@pytest.fixture
def store(resources):
    store = resources["delta_store"]
    hours = hours_between(START, START + timedelta(hours=HOURS))
    rows = _metrics(hours)
    missing = [c for c in store_columns(store) if c not in rows.columns]
    store.merge(HOURLY_TWEET_METRICS, rows.with_columns(**{c: pl.lit(None) for c in missing}))
    return store


def store_columns(store) -> list[str]:
    return [field.name for field in HOURLY_TWEET_METRICS.schema]


def _judge(store, detector, start_hour: int, end_hour: int) -> pl.DataFrame:
    rows = judge_hours(
        store, detector, DetectionConfig(), START + timedelta(hours=start_hour), START + timedelta(hours=end_hour)
    )
    return rows.select(VERDICT_COLUMNS).sort("metric", "hour")


def test_live_backfill_and_rejudged_verdicts_are_identical(store, resources):
    detector = resources["anomaly_detector"]
    backfill = _judge(store, detector, 0, HOURS)
    assert backfill.filter(pl.col("status") == "ok").height > 1500
    assert backfill.filter(pl.col("is_anomaly") & (pl.col("hour") == START + timedelta(hours=500))).height == 1

    live = pl.concat([_judge(store, detector, h, h + 1) for h in range(HOURS - 120, HOURS)])  # hour by hour
    other_ranges = pl.concat([_judge(store, detector, 0, 400), _judge(store, detector, 400, 700), _judge(store, detector, 700, HOURS)])
    assert live.sort("metric", "hour").equals(backfill.filter(pl.col("hour") >= START + timedelta(hours=HOURS - 120)))
    assert other_ranges.sort("metric", "hour").equals(backfill)

    # more hours arrive (later data): the verdicts of the hours already judged do not move
    later = START + timedelta(hours=HOURS)
    extra = _metrics(hours_between(later, later + timedelta(hours=48)), seed=1)
    missing = [c for c in store_columns(store) if c not in extra.columns]
    store.merge(HOURLY_TWEET_METRICS, extra.with_columns(**{c: pl.lit(None) for c in missing}))
    assert _judge(store, detector, 0, HOURS).equals(backfill)


def _cell(value) -> str:
    """A CSV cell as a user's export would hold it: an hour without a value is an empty cell."""
    return "" if value is None or value != value else str(value)


@pytest.mark.parametrize("metric", ["tweet_count", "avg_likes"])
def test_pipeline_verdicts_equal_the_cli_stream_mode(store, resources, tmp_path, metric):
    verdicts = _judge(store, resources["anomaly_detector"], 0, HOURS).filter(pl.col("metric") == metric)
    grid = metric_grid(store, START, START + timedelta(hours=HOURS))
    source = tmp_path / f"{metric}.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        writer.writerows((f"{h:%Y-%m-%dT%H:%M:%SZ}", _cell(v)) for h, v in zip(grid["hour"], grid[metric]))
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "anomaly_pipeline.cli"]
    done = subprocess.run([*command, "detect", str(source), "--mode", "stream"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert len(rows) == HOURS
    cli_flags = [row["is_anomaly"] == "true" for row in rows]
    assert cli_flags == verdicts["is_anomaly"].to_list()
    judged = verdicts["status"] == "ok"
    cli_expected = np.array([float(row["expected_value"] or "nan") for row in rows])
    np.testing.assert_allclose(cli_expected[judged.to_numpy()], verdicts.filter(judged)["expected_value"].to_numpy(), rtol=1e-9)
    assert sum(cli_flags) >= 1


def test_hours_before_the_first_tweet_are_not_a_run_of_zeros(store, resources):
    """A replay's partitions start at midnight, its first tweet later that day: the empty hours
    before it are no data, so the verdicts are those of the series that starts at the first tweet."""
    detector = resources["anomaly_detector"]
    before = _judge(store, detector, 0, HOURS)
    early = hours_between(START - timedelta(hours=20), START)
    empty = _metrics(early).with_columns(tweet_count=0, like_sum=0, avg_likes=None)
    missing = [c for c in store_columns(store) if c not in empty.columns]
    store.merge(HOURLY_TWEET_METRICS, empty.with_columns(**{c: pl.lit(None) for c in missing}))
    assert metric_grid(store, early[0], START + timedelta(hours=HOURS))["hour"][0] == START
    after = _judge(store, detector, 0, HOURS)
    assert after.equals(before)
    assert set(_judge(store, detector, -20, 0)["status"]) == {"no_data"}
