"""Anomalies: an hourly verdict per metric, from last-point detection over a trailing window."""


from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field, field_validator

from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.detection.errors import DetectionError
from anomaly_pipeline.partitions import HOURLY_PARTITIONS, hours_between
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.detector import AnomalyDetector
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS, TWEET_ANOMALIES

DETECTABLE_METRICS = ("avg_likes", "tweet_count")
MIN_POINTS = 12  # the Anomaly Detector API refuses shorter series
MAX_WINDOW_HOURS = 8640  # and longer ones


class DetectionConfig(dg.Config):
    """How each hour's verdict is made (the tutorial sends the latest 72 hourly points)."""

    window_hours: int = Field(
        default=72, ge=MIN_POINTS, le=MAX_WINDOW_HOURS, description="Hours sent per verdict."
    )
    use_suggested_window: bool = Field(
        default=False,
        description="Send the detector's suggestedWindow (4 periods + 1) instead of window_hours.",
    )
    metrics: list[str] = Field(
        default=list(DETECTABLE_METRICS), description=f"Metrics to judge, of {DETECTABLE_METRICS}."
    )

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: list[str]) -> list[str]:
        unknown = sorted(set(metrics) - set(DETECTABLE_METRICS))
        if unknown or not metrics:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(DETECTABLE_METRICS)}")
        return metrics


@dg.asset(
    deps=[hourly_tweet_metrics],
    partitions_def=HOURLY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="anomalies",
    kinds={"numpy", "deltalake"},
    owners=["team:anomaly-pipeline"],
    tags={"layer": "gold"},
    metadata={"table": TWEET_ANOMALIES.name, "merge_key": "hour, metric"},
)
def tweet_anomalies(
    context: dg.AssetExecutionContext,
    config: DetectionConfig,
    anomaly_detector: AnomalyDetector,
    delta_store: DeltaStore,
) -> dg.MaterializeResult:
    """Per-hour anomaly verdicts in Delta, one row per hour and metric.

    Partition H judges H by last-point detection over the window of hourly metrics ending at H
    (72 hours by default, the tutorial's choice; sensitivity 95 and maxAnomalyRatio 0.25 unless
    configured on the detector). Hours with no tweets count as 0 tweets and have no average.
    Fewer than 12 usable points gives status `insufficient_history`; an hour with no value gives
    `no_data`; a window the detector refuses gives `rejected:<error code>`. Re-running a
    partition replaces its rows (MERGE on hour + metric).
    """
    window = context.partition_time_window
    verdicts = judge_hours(delta_store, anomaly_detector, config, window.start, window.end)
    delta_store.merge(TWEET_ANOMALIES, verdicts)

    flagged = verdicts.filter(pl.col("is_anomaly")).sort("severity", descending=True)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": verdicts.height,
            "anomalies": flagged.height,
            "insufficient_history": verdicts.filter(
                pl.col("status") == "insufficient_history"
            ).height,
            "detector": anomaly_detector.detector_name,
            "flagged_hours": dg.MetadataValue.md(_markdown(flagged.head(20))),
            "table_uri": delta_store.table_uri(TWEET_ANOMALIES),
        }
    )


def judge_hours(
    store: DeltaStore, detector: AnomalyDetector, config: DetectionConfig, start: datetime, end: datetime
) -> pl.DataFrame:
    """Verdict rows for every hour in [start, end) and every configured metric.

    The metrics are read once for the whole range plus its lookback, so a backfill of a year is
    one read and one MERGE, not thousands.
    """
    lookback = MAX_WINDOW_HOURS if config.use_suggested_window else config.window_hours
    history = _metric_grid(store, start - timedelta(hours=lookback - 1), end)
    rows = [
        _verdict(history, metric, hour, config, detector) | {"metric": metric}
        for metric in config.metrics
        for hour in hours_between(start, end)
    ]
    return pl.DataFrame(rows, schema_overrides={"hour": pl.Datetime("us", "UTC")}).with_columns(
        detector=pl.lit(detector.detector_name),
        detected_at=pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC")),
    )


def _metric_grid(store: DeltaStore, start: datetime, end: datetime) -> dict[str, np.ndarray]:
    """Metrics on a complete hourly grid over [start, end), from the first hour with data.

    A missing hour after the data starts is an hour without tweets: 0 tweets, no average.
    """
    rows = store.read_hours(HOURLY_TWEET_METRICS, start, end)
    first = store.scan(HOURLY_TWEET_METRICS).select(pl.col("hour").min()).collect().item()
    hours = hours_between(max(start, first), end) if first is not None else []
    grid = pl.DataFrame({"hour": hours}, schema={"hour": pl.Datetime("us", "UTC")}).join(
        rows.select("hour", *DETECTABLE_METRICS), on="hour", how="left"
    )
    return {
        "hour": hours,
        "tweet_count": grid["tweet_count"].fill_null(0).cast(pl.Float64).to_numpy(),
        "avg_likes": grid["avg_likes"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
    }


def _verdict(history, metric, hour, config, detector: AnomalyDetector) -> dict:
    hours: list[datetime] = history["hour"]
    empty = {
        "hour": hour, "status": "no_data", "value": None, "expected_value": None,
        "upper_margin": None, "lower_margin": None, "is_anomaly": False,
        "is_positive_anomaly": False, "is_negative_anomaly": False, "severity": 0.0,
        "period": None, "points_used": 0,
    }  # fmt: skip
    if not hours or hour < hours[0] or hour > hours[-1]:
        return empty
    end = (hour - hours[0]) // timedelta(hours=1) + 1
    values = history[metric]

    def window_of(size: int):
        start = max(0, end - size)
        return hours[start:end], values[start:end]

    stamps, window = window_of(config.window_hours)
    last = float(window[-1])
    points = int(np.count_nonzero(~np.isnan(window)))
    if np.isnan(last):
        return empty | {"points_used": points}
    if points < MIN_POINTS:
        return empty | {"status": "insufficient_history", "value": last, "points_used": points}
    try:
        verdict = detector.detect_last(stamps, window)
        if config.use_suggested_window and verdict.suggested_window != len(window):
            stamps, window = window_of(max(MIN_POINTS, verdict.suggested_window))
            points = int(np.count_nonzero(~np.isnan(window)))
            verdict = detector.detect_last(stamps, window)
    except DetectionError as rejection:
        # The window itself is unusable (e.g. a seasonal series missing over half its points):
        # that is a verdict about this hour, not a reason to fail the other hours.
        return empty | {"status": f"rejected:{rejection.code}", "value": last, "points_used": points}
    return {
        "hour": hour, "status": "ok", "value": last,
        "expected_value": verdict.expected_value, "upper_margin": verdict.upper_margin,
        "lower_margin": verdict.lower_margin, "is_anomaly": verdict.is_anomaly,
        "is_positive_anomaly": verdict.is_positive_anomaly,
        "is_negative_anomaly": verdict.is_negative_anomaly, "severity": verdict.severity,
        "period": verdict.period, "points_used": points,
    }  # fmt: skip


def _markdown(flagged: pl.DataFrame) -> str:
    if flagged.is_empty():
        return "No anomalies in these hours."
    lines = ["| hour (UTC) | metric | value | expected | severity |", "|---|---|---|---|---|"]
    for row in flagged.iter_rows(named=True):
        lines.append(
            f"| {row['hour']:%Y-%m-%d %H:%M} | {row['metric']} | {row['value']:.2f} "
            f"| {row['expected_value']:.2f} | {row['severity']:.2f} |"
        )
    return "\n".join(lines)
