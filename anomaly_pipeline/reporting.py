"""What the Dagster UI shows about the verdicts and metrics: materialization metadata.

- Each hourly partition carries its own hour: per metric the verdict, value, expected value, band
  (expected - lower_margin .. expected + upper_margin) and severity, as numbers the asset's Plots
  tab draws across partitions (`hour_metadata`, `metrics_hour_metadata`).
- The newest hour of a run also carries the recent picture (`recent_report`): the anomalies of the
  last 24 hours and 7 days up to that hour, and per metric a plot of those 7 days with the
  expected value, the band and the flagged hours marked. The plot is a small PNG drawn with
  matplotlib's Agg canvas (no display, no global pyplot state) and embedded in Markdown as a
  base64 data URI, which the UI renders as an image.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from anomaly_pipeline.partitions import hours_between, partition_key

RECENT_DAYS = 7  # the plotted series and the weekly count
LAST_DAY_HOURS = 24
MAX_TABLE_ROWS = 20
DIGITS = 4  # decimals of the numbers shown per hour
PLOT_SIZE_INCHES = (8.0, 2.6)
PLOT_DPI = 80  # 640 x 208 px: a PNG of tens of kB
COLORS = {"value": "#252525", "expected": "#3182bd", "band": "#c6dbef", "flagged": "#d62728"}


def verdict_text(row: dict) -> str:
    """One hour's verdict of one metric, in words."""
    if row["status"] != "ok":
        return row["status"]
    if row["is_positive_anomaly"]:
        return "anomaly: above the band"
    if row["is_negative_anomaly"]:
        return "anomaly: below the band"
    return "anomaly" if row["is_anomaly"] else "normal"


def hour_metadata(rows: pl.DataFrame) -> dict[str, object]:
    """Metadata of one hour's partition from its verdict rows (one per metric)."""
    metadata: dict[str, object] = {
        "dagster/row_count": rows.height,
        "anomalies": int(rows["is_anomaly"].sum()),
    }
    for row in rows.sort("metric").iter_rows(named=True):
        metric = row["metric"]
        metadata[f"{metric}_verdict"] = verdict_text(row)
        numbers = {"value": row["value"]}
        if row["status"] == "ok":
            numbers |= {
                "expected": row["expected_value"],
                "band_low": row["expected_value"] - row["lower_margin"],
                "band_high": row["expected_value"] + row["upper_margin"],
                "severity": row["severity"],
            }
        for name, number in numbers.items():
            if number is not None and np.isfinite(number):  # no value: no point on the plot
                metadata[f"{metric}_{name}"] = round(float(number), DIGITS)
    return metadata


def metadata_by_partition(verdicts: pl.DataFrame) -> dict[str, dict[str, object]]:
    """`hour_metadata` for every hour in `verdicts`, keyed by partition key."""
    return {
        partition_key(hour): hour_metadata(rows)
        for (hour,), rows in verdicts.sort("hour").group_by("hour", maintain_order=True)
    }


def metrics_hour_metadata(row: dict) -> dict[str, object]:
    """Metadata of one hour's `hourly_tweet_metrics` partition from its row."""
    metadata: dict[str, object] = {
        "dagster/row_count": 1,
        "tweet_count": int(row["tweet_count"]),
        "like_sum": int(row["like_sum"]),
    }
    if row["avg_likes"] is not None:  # an hour without tweets has no average
        metadata["avg_likes"] = round(float(row["avg_likes"]), DIGITS)
    return metadata


def recent_window(until: datetime) -> tuple[datetime, datetime]:
    """The hours [start, end) of the recent report ending with hour `until`."""
    end = until + timedelta(hours=1)
    return end - timedelta(days=RECENT_DAYS), end


def recent_report(recent: pl.DataFrame, until: datetime, metrics: list[str]) -> dict[str, object]:
    """Metadata about the 7 days of verdicts ending with hour `until` (rows of `recent` outside
    them are ignored): anomaly counts, a plot per metric and the flagged hours."""
    start, end = recent_window(until)
    recent = recent.filter((pl.col("hour") >= start) & (pl.col("hour") < end))
    flagged = recent.filter(pl.col("is_anomaly"))
    last_day = flagged.filter(pl.col("hour") >= end - timedelta(hours=LAST_DAY_HOURS))
    metadata: dict[str, object] = {
        "recent_until": partition_key(until),
        "anomalies_last_24h": last_day.height,
        "anomalies_last_7d": flagged.height,
    }
    for metric in metrics:
        png = verdict_plot(recent.filter(pl.col("metric") == metric), metric, start, end)
        metadata[f"plot_{metric}"] = png_markdown(png, f"{metric} in the last {RECENT_DAYS} days")
    metadata["flagged_hours_last_7d"] = dg.MetadataValue.md(
        flagged_table(flagged.sort("hour", descending=True).head(MAX_TABLE_ROWS))
    )
    return metadata


def verdict_plot(rows: pl.DataFrame, metric: str, start: datetime, end: datetime) -> bytes:
    """A PNG of one metric's hours in [start, end): value, expected value, band, flagged hours."""
    grid = _hourly_grid(rows, start, end)
    hours = grid["hour"].dt.replace_time_zone(None).to_list()  # matplotlib plots naive UTC
    value, expected = _floats(grid, "value"), _floats(grid, "expected_value")
    low, high = expected - _floats(grid, "lower_margin"), expected + _floats(grid, "upper_margin")
    flagged = grid["is_anomaly"].fill_null(False).to_numpy()

    figure = Figure(figsize=PLOT_SIZE_INCHES, dpi=PLOT_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.fill_between(hours, low, high, color=COLORS["band"], linewidth=0, label="band")
    axes.plot(hours, expected, color=COLORS["expected"], linewidth=1, linestyle="--", label="expected")
    axes.plot(hours, value, color=COLORS["value"], linewidth=1, label=metric)
    axes.scatter(
        [h for h, f in zip(hours, flagged) if f], value[flagged], color=COLORS["flagged"], s=20,
        zorder=3, label=f"flagged ({int(flagged.sum())})",
    )  # fmt: skip
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_xlim(hours[0], hours[-1])
    last = end - timedelta(hours=1)
    axes.set_title(f"{metric}: hours {start:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC", fontsize=9)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", ncol=4, frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG as a Markdown image with a base64 data URI (rendered inline by the Dagster UI)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def flagged_table(flagged: pl.DataFrame) -> str:
    """The flagged hours as a Markdown table (or a sentence when there are none)."""
    if flagged.is_empty():
        return "No anomalies in these hours."
    lines = ["| hour (UTC) | metric | value | expected | severity |", "|---|---|---|---|---|"]
    for row in flagged.iter_rows(named=True):
        lines.append(
            f"| {row['hour']:%Y-%m-%d %H:%M} | {row['metric']} | {row['value']:.2f} "
            f"| {row['expected_value']:.2f} | {row['severity']:.2f} |"
        )
    return "\n".join(lines)


def _hourly_grid(rows: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """`rows` on every hour of [start, end); an hour without a verdict is a gap in the lines."""
    hours = pl.DataFrame({"hour": hours_between(start, end)}, schema={"hour": pl.Datetime("us", "UTC")})
    columns = ["hour", "value", "expected_value", "lower_margin", "upper_margin", "is_anomaly"]
    return hours.join(rows.select(columns), on="hour", how="left").sort("hour")


def _floats(grid: pl.DataFrame, column: str) -> np.ndarray:
    return grid[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
