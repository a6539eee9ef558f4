"""Last-point mode on short hourly windows, as the pipeline calls it every hour."""

from __future__ import annotations

import numpy as np

from anomaly_pipeline.detection.engine import detect_last_values, detect_period
from anomaly_pipeline.detection.request import natural_periods


def test_natural_periods_follow_the_calendar():
    assert natural_periods("hourly") == (24, 168)
    assert natural_periods("minutely", 5) == (12, 288, 2016)
    assert natural_periods("daily") == (7,)
    assert natural_periods("monthly") == (12,)
    assert natural_periods("none") == () and natural_periods("yearly") == ()


def test_three_days_of_hourly_counts_get_the_daily_period():
    rng = np.random.default_rng(3)
    hits_with_calendar = hits_without = 0
    for trial in range(40):
        t = np.arange(71) + trial * 7
        shape = 1 + 0.6 * np.sin(2 * np.pi * t / 24) + 0.25 * np.sin(4 * np.pi * t / 24)
        x = rng.poisson(80 * shape * (1 + 0.15 * np.sin(2 * np.pi * t / 168))).astype(float)
        hits_with_calendar += detect_period(x, natural_periods=(24, 168)) == 24
        hits_without += detect_period(x) == 24
    assert hits_with_calendar >= 38
    assert hits_with_calendar > hits_without


def test_short_non_seasonal_window_keeps_a_real_margin():
    # 12 noisy averages: in-sample median-filter residuals are mostly exactly zero here, which
    # once collapsed the margin to ~1e-3 and flagged nearly every early hour.
    x = np.array([2.1, 2.4, 2.4, 1.9, 2.4, 2.6, 2.4, 2.2, 2.4, 2.0, 2.4, 2.5])
    result = detect_last_values(x)
    assert result.upper_margin > 0.2 and result.lower_margin > 0.2
    assert not result.is_anomaly
    assert detect_last_values(np.r_[x[:-1], 7.5]).is_anomaly
