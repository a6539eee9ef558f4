"""Each verdict row records the sensitivity it was judged at (DETECTOR_SENSITIVITY), and a verdict
table written before that column existed keeps its rows and gains the column on the next run."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import polars as pl
from deltalake import write_deltalake

from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.ingest import raw_tweets
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.resources.detector import LocalAnomalyDetector
from anomaly_pipeline.tables import TWEET_ANOMALIES
from anomaly_pipeline_tests.conftest import materialize_range, read_table, utc

START = utc(2026, 1, 29, 12)
END = START + timedelta(hours=30)
EARLIER_HOUR = START - timedelta(days=3)  # judged by the previous release, outside this run


def _previous_release_row() -> pa.Table:
    """One verdict row in the table's schema as it was before the sensitivity column."""
    schema = pa.schema([f for f in TWEET_ANOMALIES.schema if f.name != "sensitivity"])
    row = dict(hour=EARLIER_HOUR, metric="tweet_count", status="ok", value=12.0, expected_value=5.0,
               upper_margin=4.0, lower_margin=3.0, is_anomaly=True, is_positive_anomaly=True,
               is_negative_anomaly=False, severity=0.5, period=24, points_used=500, detector="local",
               detected_at=EARLIER_HOUR + timedelta(minutes=5))
    return pa.table({name: [row[name]] for name in schema.names}, schema=schema)


def test_rows_record_the_sensitivity_and_an_older_table_gains_the_column(resources, instance):
    store = resources["delta_store"]
    write_deltalake(store.table_uri(TWEET_ANOMALIES), _previous_release_row())
    resources = {**resources, "anomaly_detector": LocalAnomalyDetector(sensitivity=90)}

    result = materialize_range([raw_tweets, hourly_tweet_metrics, tweet_anomalies], resources, instance, START, END)

    verdicts = read_table(resources, TWEET_ANOMALIES)
    judged = verdicts.filter(pl.col("hour") >= START)
    assert judged.height == 2 * 30 and judged["sensitivity"].to_list() == [90] * judged.height
    earlier = verdicts.filter(pl.col("hour") == EARLIER_HOUR).row(0, named=True)
    assert (earlier["value"], earlier["is_anomaly"], earlier["sensitivity"]) == (12.0, True, None)  # kept as it was
    materialization = result.asset_materializations_for_node("tweet_anomalies")[-1]
    assert materialization.metadata["sensitivity"].value == 90
