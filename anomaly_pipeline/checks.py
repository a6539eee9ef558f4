"""Data-quality checks on the Delta tables, shown on each asset's Checks tab after every run."""

import dagster as dg
import polars as pl

from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.tables import DEAD_LETTER_EVENTS, HOURLY_TWEET_METRICS, TWEET_ANOMALIES, TWEETS

DEAD_LETTER_WARN_SHARE = 0.01


@dg.asset_check(asset=hourly_tweet_metrics, blocking=True)
def metrics_are_consistent(delta_store: DeltaStore) -> dg.AssetCheckResult:
    """One row per hour, no negative counts, and avg_likes = like_sum / tweet_count (null when
    the hour had no tweets)."""
    rows = delta_store.scan(HOURLY_TWEET_METRICS).collect()
    duplicated = rows.height - rows["hour"].n_unique()
    negative = rows.filter(
        pl.any_horizontal(pl.col("tweet_count", "like_sum", "retweet_sum", "reply_sum", "quote_sum") < 0)
    ).height
    wrong_average = rows.filter(
        pl.when(pl.col("tweet_count") > 0)
        .then((pl.col("avg_likes") - pl.col("like_sum") / pl.col("tweet_count")).abs() > 1e-9)
        .otherwise(pl.col("avg_likes").is_not_null())
    ).height
    return dg.AssetCheckResult(
        passed=duplicated == negative == wrong_average == 0,
        metadata={
            "hours": rows.height,
            "duplicated_hours": duplicated,
            "rows_with_negative_counts": negative,
            "rows_with_wrong_average": wrong_average,
        },
    )


@dg.asset_check(asset=hourly_tweet_metrics)
def few_dead_letters(delta_store: DeltaStore) -> dg.AssetCheckResult:
    """Warns when more than 1% of the events ever read were malformed (dead-lettered)."""
    dead = delta_store.scan(DEAD_LETTER_EVENTS).select(pl.len()).collect().item()
    tweets = delta_store.scan(TWEETS).select(pl.len()).collect().item()
    share = dead / (dead + tweets) if dead + tweets else 0.0
    return dg.AssetCheckResult(
        passed=share <= DEAD_LETTER_WARN_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"dead_letters": dead, "tweets": tweets, "dead_letter_share": round(share, 5)},
    )


@dg.asset_check(asset=tweet_anomalies, blocking=True)
def verdicts_are_consistent(delta_store: DeltaStore) -> dg.AssetCheckResult:
    """One verdict per hour and metric; margins are non-negative; every anomaly lies outside its
    band [expected - lower_margin, expected + upper_margin]. (An hour outside the band that
    continues an event already alarmed is not flagged again: `hours_outside_band_in_events`.)"""
    rows = delta_store.scan(TWEET_ANOMALIES).collect()
    duplicated = rows.height - rows.select("hour", "metric").n_unique()
    judged = rows.filter(pl.col("status") == "ok")
    negative_margins = judged.filter((pl.col("upper_margin") < 0) | (pl.col("lower_margin") < 0)).height
    outside = (pl.col("value") > pl.col("expected_value") + pl.col("upper_margin") + 1e-9) | (
        pl.col("value") < pl.col("expected_value") - pl.col("lower_margin") - 1e-9
    )
    contradictions = judged.filter(pl.col("is_anomaly") & ~outside).height
    continuing = judged.filter(outside & ~pl.col("is_anomaly")).height
    return dg.AssetCheckResult(
        passed=duplicated == negative_margins == contradictions == 0,
        metadata={
            "verdicts": rows.height,
            "duplicated_verdicts": duplicated,
            "negative_margins": negative_margins,
            "anomalies_inside_their_band": contradictions,
            "hours_outside_band_in_events": continuing,
        },
    )


ALL_CHECKS = [metrics_are_consistent, few_dead_letters, verdicts_are_consistent]
