"""Engine tests: documented reference vectors plus generated series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anomaly_pipeline.detection.engine import (
    ChangePointResult,
    LastResult,
    SeriesResult,
    detect_change_points_values,
    detect_entire_values,
    detect_last_values,
    detect_period,
    detect_stream_values,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _fixture(name):
    doc = json.loads((FIXTURES / name).read_text())
    values = np.array([p["value"] for p in doc["request"]["series"]], dtype=float)
    return values, doc["response"]


def _seasonal_counts(n, period=24, base=100.0, amp=0.5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    lam = base * (1 + amp * np.sin(2 * np.pi * t / period))
    return rng.poisson(lam).astype(float)


# ----------------------------------------------------------------- reference vectors


def test_entire_reference_vector():
    values, resp = _fixture("entire-detect.json")
    r = detect_entire_values(values, sensitivity=95, max_anomaly_ratio=0.25)
    assert isinstance(r, SeriesResult)
    assert r.period == 12
    assert list(np.flatnonzero(r.is_anomaly)) == [25]
    assert r.is_positive_anomaly[25] and not r.is_negative_anomaly.any()
    ref = np.array(resp["expectedValues"])
    assert np.max(np.abs(r.expected_values / ref - 1)) < 0.02
    assert r.severity[25] > 0 and np.count_nonzero(r.severity) == 1


def test_last_reference_vector():
    values, resp = _fixture("last-detect.json")
    r = detect_last_values(values, sensitivity=95, max_anomaly_ratio=0.25)
    assert isinstance(r, LastResult)
    assert r.is_anomaly is False
    assert r.period == 12
    assert r.suggested_window == 49
    assert abs(r.expected_value / resp["expectedValue"] - 1) < 0.02
    assert r.severity == 0.0


# ----------------------------------------------------------------- period


def test_detect_period_seasonal_and_not():
    assert detect_period(_seasonal_counts(24 * 7)) == 24
    rng = np.random.default_rng(1)
    assert detect_period(rng.normal(10, 1, 300)) == 0
    assert detect_period(np.full(50, 3.0)) == 0
    assert detect_period(np.zeros(20)) == 0


# ----------------------------------------------------------------- entire mode


def test_entire_flags_spike_and_drop_on_seasonal_counts():
    x = _seasonal_counts(24 * 7, seed=2)
    x[100] *= 5
    x[130] = round(x[130] * 0.1)
    r = detect_entire_values(x)
    assert r.period == 24
    assert r.is_anomaly[100] and r.is_positive_anomaly[100]
    assert r.is_anomaly[130] and r.is_negative_anomaly[130]
    assert r.is_anomaly.sum() <= 4


def test_flat_noisy_series_has_few_flags():
    rng = np.random.default_rng(3)
    x = rng.normal(50, 5, 2000)
    r = detect_entire_values(x)
    assert r.is_anomaly.mean() < 0.005
    s = detect_stream_values(x)
    assert s.is_anomaly.mean() < 0.01


def test_sensitivity_is_monotone():
    x = _seasonal_counts(24 * 10, seed=4)
    counts = [detect_entire_values(x, sensitivity=s).is_anomaly.sum() for s in (0, 50, 80, 90, 95, 99)]
    assert counts == sorted(counts)
    widths = [detect_entire_values(x, sensitivity=s).upper_margins.mean() for s in (50, 95, 99)]
    assert widths[0] > widths[1] > widths[2]


def test_severity_ranks_bigger_spike_higher():
    x = _seasonal_counts(24 * 7, seed=5)
    x[50] = x[50] * 3
    x[120] = x[120] * 8
    r = detect_entire_values(x)
    assert r.is_anomaly[50] and r.is_anomaly[120]
    assert 0 < r.severity[50] < r.severity[120] <= 1
    assert np.all(r.severity[~r.is_anomaly] == 0)


def test_max_anomaly_ratio_caps_flags():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, 100)
    x[::5] += 50
    r = detect_entire_values(x, max_anomaly_ratio=0.1)
    assert r.is_anomaly.sum() <= 10


def test_counts_near_zero():
    rng = np.random.default_rng(7)
    x = rng.poisson(0.5, 300).astype(float)
    r = detect_entire_values(x)
    assert r.is_anomaly.mean() < 0.05
    x[200] = 25
    r = detect_entire_values(x)
    assert r.is_anomaly[200]
    assert np.all(np.isfinite(r.expected_values))
    last = detect_last_values(x[:201])
    assert last.is_anomaly and last.is_positive_anomaly


def test_degenerate_series_do_not_crash():
    for x in (np.zeros(12), np.full(30, 7.0), np.r_[np.full(20, np.nan), np.ones(12)], np.full(12, np.nan)):
        r = detect_entire_values(x)
        assert r.is_anomaly.sum() == 0
        assert np.all(np.isfinite(r.expected_values))
        detect_last_values(x)
        s = detect_stream_values(x)
        assert s.is_anomaly.sum() == 0
        detect_change_points_values(x)


def test_nan_gaps_are_handled():
    x = _seasonal_counts(24 * 7, seed=8)
    x[40:46] = np.nan
    x[90] = x[90] * 6
    r = detect_entire_values(x)
    assert r.period == 24
    assert not r.is_anomaly[40:46].any()
    assert r.is_anomaly[90]
    assert np.all(np.isfinite(r.expected_values))
    s = detect_stream_values(x)
    assert not s.is_anomaly[40:46].any()


def test_level_shift_stream_adapts():
    rng = np.random.default_rng(9)
    x = np.r_[rng.normal(100, 3, 400), rng.normal(160, 3, 400)]
    s = detect_stream_values(x)
    assert s.is_anomaly[400:410].any()  # the shift is noticed
    assert s.is_anomaly[600:].mean() < 0.02  # and then becomes the new normal


# ----------------------------------------------------------------- last mode


def test_last_flags_burst_and_drop_on_hourly_counts():
    x = _seasonal_counts(72 + 1, base=120, seed=10)
    hist = x[:-1]
    normal = detect_last_values(np.r_[hist, x[-1]])
    burst = detect_last_values(np.r_[hist, x[-1] * 5])
    drop = detect_last_values(np.r_[hist, round(x[-1] * 0.1)])
    assert burst.is_anomaly and burst.is_positive_anomaly
    assert drop.is_anomaly and drop.is_negative_anomaly
    assert burst.severity > 0
    assert normal.period == 24 and normal.suggested_window == 97


def test_last_few_false_alarms_on_normal_hours():
    rng = np.random.default_rng(11)
    t = np.arange(24 * 60)
    lam = 100 * (1 + 0.6 * np.sin(2 * np.pi * t / 24)) * (1 + 0.2 * np.sin(2 * np.pi * t / 168))
    x = rng.poisson(lam).astype(float)
    flags = [detect_last_values(x[i - 72 : i]).is_anomaly for i in range(72, x.size, 3)]
    assert np.mean(flags) < 0.03


# ----------------------------------------------------------------- stream mode


def test_stream_is_causal_and_flags_spike():
    x = _seasonal_counts(24 * 14, seed=12)
    x[300] *= 6
    full = detect_stream_values(x, period=24)
    part = detect_stream_values(x[:301], period=24)
    assert full.is_anomaly[300] and part.is_anomaly[300]
    np.testing.assert_array_equal(full.is_anomaly[:301], part.is_anomaly)
    assert full.severity[300] > 0
    assert not full.is_anomaly[:24].any()  # no verdict before a day of residuals gives a scale


# ----------------------------------------------------------------- change points


def test_change_point_found_at_level_shift():
    rng = np.random.default_rng(13)
    x = np.r_[rng.normal(10, 1, 100), rng.normal(20, 1, 100)]
    r = detect_change_points_values(x)
    assert isinstance(r, ChangePointResult)
    cps = np.flatnonzero(r.is_change_point)
    assert len(cps) >= 1 and any(abs(c - 100) <= 3 for c in cps)
    assert np.all((r.confidence_scores >= 0) & (r.confidence_scores <= 1))
    flat = detect_change_points_values(rng.normal(10, 1, 200))
    assert flat.is_change_point.sum() == 0


@pytest.mark.parametrize("n", [12, 13, 50])
def test_short_series(n):
    x = np.linspace(1, 2, n)
    assert detect_entire_values(x).is_anomaly.shape == (n,)
    assert isinstance(detect_last_values(x), LastResult)


def test_last_on_heavy_tailed_hourly_like_averages():
    rng = np.random.default_rng(14)
    t = np.arange(24 * 12)
    lam = 20 + 280 * (0.5 + 0.5 * np.sin(2 * np.pi * (t - 6) / 24)) ** 2
    counts = rng.poisson(lam)
    likes = np.array([rng.pareto(1.5, max(int(c), 1)).mean() * 10 for c in counts])
    normal, burst, drop = [], [], []
    for i in range(72, t.size):
        w = likes[i - 72 : i].copy()
        normal.append(detect_last_values(w).is_anomaly)
        w[-1] *= 6
        burst.append(detect_last_values(w).is_anomaly)
        w[-1] *= 0.1 / 6
        drop.append(detect_last_values(w).is_anomaly)
    assert np.mean(normal) < 0.03
    assert np.mean(burst) > 0.6
    assert np.mean(drop) > 0.6


@pytest.mark.parametrize("mode", ["entire", "stream"])
def test_anomaly_iff_outside_band(mode):
    x = _seasonal_counts(24 * 20, seed=15)
    x[200:260] += 80  # a level shift
    x[[300, 350, 420]] *= np.array([5.0, 0.1, 4.0])
    x[100:104] = np.nan
    hourly = (24, 168)  # stream mode models the calendar cycles it is given
    r = detect_entire_values(x) if mode == "entire" else detect_stream_values(x, natural_periods=hourly)
    ok = np.isfinite(x)
    outside = (x > r.expected_values + r.upper_margins) | (x < r.expected_values - r.lower_margins)
    if mode == "entire":
        np.testing.assert_array_equal(r.is_anomaly[ok], outside[ok])
    else:  # an event alarms once: every anomaly is outside its band, the hours after it need not alarm
        assert np.all(r.is_anomaly[ok] <= outside[ok]) and r.is_anomaly[200:203].any()
    assert np.all(r.upper_margins >= 0) and np.all(r.lower_margins >= 0)
    assert np.all((r.severity > 0) == r.is_anomaly) and np.all(r.severity <= 1)
    assert r.is_anomaly.sum() >= 2
