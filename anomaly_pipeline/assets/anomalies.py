"""Anomalies: an hourly verdict per metric, from the online detector over a long trailing history."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field, field_validator

from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.detection.online import COUNTS, NON_NEGATIVE
from anomaly_pipeline.partitions import HOURLY_PARTITIONS, hours_between, partition_key
from anomaly_pipeline.reporting import metadata_by_partition, recent_report, recent_window
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.detector import HOURLY_MEMORY, AnomalyDetector, HourlyVerdicts
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS, TWEET_ANOMALIES

METRIC_KINDS = {"avg_likes": NON_NEGATIVE, "tweet_count": COUNTS}  # how each metric's noise is modelled
DETECTABLE_METRICS = tuple(sorted(METRIC_KINDS))
MIN_POINTS = 12  # no verdict on fewer hours (the Anomaly Detector API refused shorter series too)
MAX_HISTORY_HOURS = 8640  # the API's longest series
TUTORIAL_WINDOW_HOURS = 72


class DetectionConfig(dg.Config):
    """How each hour's verdict is made."""

    history_hours: int = Field(
        default=HOURLY_MEMORY,
        ge=MIN_POINTS,
        le=MAX_HISTORY_HOURS,
        description=(
            f"Hours of metrics each verdict is judged on, the judged hour included. The default "
            f"({HOURLY_MEMORY} h) is the detector's whole memory, so every hour is judged exactly "
            f"as it would be on any longer history; {TUTORIAL_WINDOW_HOURS} is the tutorial's window."
        ),
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
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
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

    Hour H is judged by the online detector (`anomaly_pipeline.detection.online`) from the hourly
    metrics up to and including H, over `history_hours` hours (the detector's whole memory by
    default), so its verdict is the same whether H is judged live, in a backfill of any range, or
    again after late data. Tweet counts are modelled as counts (Poisson noise at least), average
    likes as a non-negative quantity. Hours with no tweets count as 0 tweets and have no average.
    Status `ok` is a verdict; `insufficient_history` means too little history for a noise scale
    yet; `no_data` an hour without a value; `rejected:<code>` a window the detector refused.
    A detector that cannot answer (network, authentication, server errors) fails the run, which
    is retried, and writes no row. Re-running a partition replaces its rows (MERGE on hour + metric).
    Each partition's metadata is its own hour's verdict, value, expected value, band and severity
    per metric; the newest hour of a run also shows the last 7 days as a plot per metric
    (`anomaly_pipeline.reporting`).
    """
    window = context.partition_time_window
    verdicts = judge_hours(delta_store, anomaly_detector, config, window.start, window.end)
    delta_store.merge(TWEET_ANOMALIES, verdicts)
    _report(context, delta_store, verdicts, config.metrics)
    return dg.MaterializeResult(  # what is true of every partition of the run
        metadata={
            "detector": anomaly_detector.detector_name,
            "sensitivity": anomaly_detector.sensitivity,
            "history_hours": config.history_hours,
            "table_uri": delta_store.table_uri(TWEET_ANOMALIES),
        }
    )


def _report(
    context: dg.AssetExecutionContext, store: DeltaStore, verdicts: pl.DataFrame, metrics: list[str]
) -> None:
    """Each partition's metadata is its own hour's verdicts; the run's newest hour also gets the
    recent picture (last 24 h / 7 days, a plot per metric) and the run's totals."""
    by_partition = metadata_by_partition(verdicts)
    for key, metadata in by_partition.items():
        context.add_asset_metadata(metadata, partition_key=key)
    newest = verdicts["hour"].max()
    recent = store.read_hours(TWEET_ANOMALIES, *recent_window(newest))
    totals = {
        "run_hours": len(by_partition),
        "run_anomalies": int(verdicts["is_anomaly"].sum()),
        "run_insufficient_history": verdicts.filter(pl.col("status") == "insufficient_history").height,
    }
    context.add_asset_metadata(
        {**recent_report(recent, newest, metrics), **totals}, partition_key=partition_key(newest)
    )
    context.log.info(f"Judged {totals['run_hours']} hours: {totals['run_anomalies']} anomalies.")


def judge_hours(
    store: DeltaStore, detector: AnomalyDetector, config: DetectionConfig, start: datetime, end: datetime
) -> pl.DataFrame:
    """Verdict rows for every hour in [start, end) and every configured metric.

    The metrics are read once for the range plus its history, and each metric is judged in one
    call, so a backfill of a year is one read, two detector passes and one MERGE.
    """
    grid = metric_grid(store, start - timedelta(hours=config.history_hours - 1), end)
    judged_hours = [h for h in grid["hour"] if h >= start]
    first = len(grid["hour"]) - len(judged_hours)
    frames = []
    for metric in config.metrics:
        result = detector.judge_recent(
            grid["hour"], grid[metric], first, history=config.history_hours, kind=METRIC_KINDS[metric]
        )
        frames.append(_rows(judged_hours, grid[metric][first:], result, metric))
    missing = [h for h in hours_between(start, end) if h not in set(judged_hours)]
    frames += [_no_data_rows(missing, metric) for metric in config.metrics if missing]
    return pl.concat(frames, how="diagonal_relaxed").with_columns(
        detector=pl.lit(detector.detector_name),
        sensitivity=pl.lit(detector.sensitivity, dtype=pl.Int64),
        detected_at=pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC")),
    ).sort("metric", "hour")


def metric_grid(store: DeltaStore, start: datetime, end: datetime) -> dict[str, object]:
    """Metrics on a complete hourly grid over [start, end), from the first hour with a tweet.

    A missing hour after the data starts is an hour without tweets: 0 tweets, no average. Hours
    before the first tweet (partitions materialized before a replay's or a stream's first tweet)
    are not part of the series: they are no data, not a run of zeros.
    """
    rows = store.read_hours(HOURLY_TWEET_METRICS, start, end)
    first = (
        store.scan(HOURLY_TWEET_METRICS).filter(pl.col("tweet_count") > 0).select(pl.col("hour").min()).collect().item()
    )
    hours = hours_between(max(start, first), end) if first is not None else []
    grid = pl.DataFrame({"hour": hours}, schema={"hour": pl.Datetime("us", "UTC")}).join(
        rows.select("hour", *DETECTABLE_METRICS), on="hour", how="left"
    )
    return {
        "hour": hours,
        "tweet_count": grid["tweet_count"].fill_null(0).cast(pl.Float64).to_numpy(),
        "avg_likes": grid["avg_likes"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
    }


def _rows(hours: list[datetime], values: np.ndarray, verdicts: HourlyVerdicts, metric: str) -> pl.DataFrame:
    present = np.isfinite(values)
    status = np.where(
        verdicts.rejected != "",
        np.char.add("rejected:", verdicts.rejected.astype(str)),
        np.where(verdicts.judged, "ok", np.where(present, "insufficient_history", "no_data")),
    )
    judged = verdicts.judged

    def where_judged(a):
        return pl.Series(np.where(judged, a, np.nan)).fill_nan(None)

    return pl.DataFrame(
        {
            "hour": pl.Series(hours, dtype=pl.Datetime("us", "UTC")),
            "metric": metric,
            "status": status,
            "value": pl.Series(values).fill_nan(None),
            "expected_value": where_judged(verdicts.expected),
            "upper_margin": where_judged(verdicts.upper_margin),
            "lower_margin": where_judged(verdicts.lower_margin),
            "is_anomaly": verdicts.is_anomaly & judged,
            "is_positive_anomaly": verdicts.is_positive & judged,
            "is_negative_anomaly": verdicts.is_negative & judged,
            "severity": np.where(judged, verdicts.severity, 0.0),
            "period": pl.Series(np.where(judged, verdicts.period, 0)).cast(pl.Int64),
            "points_used": pl.Series(verdicts.points_used).cast(pl.Int64),
        }
    )


def _no_data_rows(hours: list[datetime], metric: str) -> pl.DataFrame:
    """Hours before the first metrics: nothing to judge."""
    return pl.DataFrame(
        {
            "hour": pl.Series(hours, dtype=pl.Datetime("us", "UTC")),
            "metric": metric,
            "status": "no_data",
            "is_anomaly": False,
            "is_positive_anomaly": False,
            "is_negative_anomaly": False,
            "severity": 0.0,
            "points_used": pl.Series([0] * len(hours), dtype=pl.Int64),
        }
    )

