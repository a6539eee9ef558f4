"""What the UI shows: after one single-run backfill, every hourly partition's materialization (read
back from a real Dagster instance) holds its own hour's verdicts and metrics, not the range's
totals; the newest hour carries the last 7 days as PNG plots and the recent anomaly counts."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import dagster as dg
import numpy as np
import polars as pl
from PIL import Image

from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.partitions import hours_between, partition_key
from anomaly_pipeline.reporting import COLORS, PLOT_DPI, PLOT_SIZE_INCHES, verdict_plot
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS, TWEET_ANOMALIES
from anomaly_pipeline_tests.conftest import materialize_range, read_table, utc

# Three days of the synthetic source that hold flagged hours (checked below, not assumed).
START = utc(2026, 1, 29, 12)
END = START + timedelta(days=3)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def materializations_by_partition(instance, asset) -> dict[str, dg.AssetMaterialization]:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset.key), limit=10_000).records
    return {r.asset_materialization.partition: r.asset_materialization for r in records}


def values(materialization: dg.AssetMaterialization) -> dict[str, object]:
    return {key: entry.value for key, entry in materialization.metadata.items()}


def png_of(markdown: str) -> bytes:
    assert markdown.startswith("![") and "](data:image/png;base64," in markdown and markdown.endswith(")")
    return base64.b64decode(markdown.split("base64,", 1)[1][:-1], validate=True)


def test_each_partition_of_one_run_shows_its_own_hour_and_the_newest_the_recent_picture(resources, instance):
    materialize_range([raw_tweets, hourly_tweet_metrics, tweet_anomalies], resources, instance, START, END)
    hours = hours_between(START, END)
    verdicts = read_table(resources, TWEET_ANOMALIES)
    metrics = read_table(resources, HOURLY_TWEET_METRICS)
    judged = materializations_by_partition(instance, tweet_anomalies)
    counted = materializations_by_partition(instance, hourly_tweet_metrics)
    assert set(judged) == set(counted) == {partition_key(h) for h in hours}

    flagged_hours = set(verdicts.filter(pl.col("is_anomaly"))["hour"])
    assert 0 < len(flagged_hours) < len(hours) / 4, "the range must hold some flagged hours"
    for hour in hours:
        meta = values(judged[partition_key(hour)])
        rows = verdicts.filter(pl.col("hour") == hour)
        assert meta["anomalies"] == rows["is_anomaly"].sum()
        assert meta["dagster/row_count"] == rows.height == 2
        for row in rows.iter_rows(named=True):
            metric = row["metric"]
            assert meta[f"{metric}_value"] == round(row["value"], 4)
            if row["status"] != "ok":
                assert meta[f"{metric}_verdict"] == row["status"] and f"{metric}_expected" not in meta
                continue
            assert np.isclose(meta[f"{metric}_expected"], row["expected_value"], rtol=0, atol=1e-4)
            assert np.isclose(meta[f"{metric}_band_low"], row["expected_value"] - row["lower_margin"], rtol=0, atol=1e-4)
            assert np.isclose(meta[f"{metric}_band_high"], row["expected_value"] + row["upper_margin"], rtol=0, atol=1e-4)
            assert np.isclose(meta[f"{metric}_severity"], row["severity"], rtol=0, atol=1e-4)
            if row["is_positive_anomaly"]:
                assert meta[f"{metric}_verdict"] == "anomaly: above the band"
            elif row["is_negative_anomaly"]:
                assert meta[f"{metric}_verdict"] == "anomaly: below the band"
            else:
                assert meta[f"{metric}_verdict"] == "normal"
        metric_row = metrics.filter(pl.col("hour") == hour).row(0, named=True)
        assert values(counted[partition_key(hour)])["tweet_count"] == metric_row["tweet_count"]
        assert values(counted[partition_key(hour)])["like_sum"] == metric_row["like_sum"]
    per_hour_counts = [values(counted[partition_key(h)])["tweet_count"] for h in hours]
    assert len(set(per_hour_counts)) > 10  # each hour its own count, not the range's total

    # the newest hour (the asset overview's latest materialization) carries the recent picture
    newest = partition_key(hours[-1])
    latest = instance.get_latest_materialization_event(tweet_anomalies.key).asset_materialization
    assert latest.partition == newest
    meta = values(latest)
    last_day = verdicts.filter(pl.col("is_anomaly") & (pl.col("hour") > hours[-1] - timedelta(hours=24)))
    assert meta["anomalies_last_24h"] == last_day.height
    assert meta["anomalies_last_7d"] == verdicts["is_anomaly"].sum()  # the whole run lies in those 7 days
    assert meta["run_hours"] == len(hours) and meta["run_anomalies"] == verdicts["is_anomaly"].sum()
    assert (meta["detector"], meta["sensitivity"]) == ("local", 95)  # what judged them, at which budget
    for metric in ("tweet_count", "avg_likes"):
        png = png_of(meta[f"plot_{metric}"])
        assert png.startswith(PNG_SIGNATURE) and 5_000 < len(png) < 80_000
        image = Image.open(io.BytesIO(png))
        assert image.size == (PLOT_SIZE_INCHES[0] * PLOT_DPI, PLOT_SIZE_INCHES[1] * PLOT_DPI)
    older = values(judged[partition_key(hours[-2])])
    assert not any(key.startswith("plot_") or key.startswith("run_") for key in older)
    assert values(counted[newest])["run_tweets_in_partitions"] == metrics["tweet_count"].sum()
    assert "run_events_read" not in values(counted[partition_key(hours[-2])])


def _pixels(png: bytes, color: str) -> int:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    target = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).sum(axis=2) < 30).sum())


def test_the_plot_draws_the_band_and_marks_the_flagged_hours():
    hours = hours_between(START, START + timedelta(hours=48))
    rows = pl.DataFrame({
        "hour": hours, "value": [10.0 + (i % 5) for i in range(48)], "expected_value": [12.0] * 48,
        "lower_margin": [4.0] * 48, "upper_margin": [5.0] * 48, "is_anomaly": [False] * 48,
    }, schema_overrides={"hour": pl.Datetime("us", "UTC")})  # fmt: skip
    calm = verdict_plot(rows, "tweet_count", hours[0], hours[-1] + timedelta(hours=1))
    flagged = rows.with_columns(
        value=pl.when(pl.col("hour") == hours[30]).then(40.0).otherwise(pl.col("value")),
        is_anomaly=pl.col("hour") == hours[30],
    )
    marked = verdict_plot(flagged, "tweet_count", hours[0], hours[-1] + timedelta(hours=1))
    assert _pixels(calm, COLORS["band"]) > 1000  # the band is drawn (legend swatch alone is ~100)
    legend_marker = _pixels(calm, COLORS["flagged"])
    assert _pixels(marked, COLORS["flagged"]) > legend_marker + 20  # a red dot at the flagged hour
