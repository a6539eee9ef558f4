"""Stream-mode invariants of the incremental detector (fast: small series only)."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_pipeline.detection.engine import SeriesResult, detect_stream_values
from anomaly_pipeline.detection.stream import stream_detect
from anomaly_pipeline.detection.stream_season import find_period, seasonal_gain
from anomaly_pipeline.detection.stream_shape import ShapeMemory


def _counts(n, period=24, base=80.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    lam = base * (1 + 0.5 * np.sin(2 * np.pi * t / period))
    return rng.poisson(lam).astype(float)


def _outside(x, r):
    return (x > r.expected_values + r.upper_margins) | (x < r.expected_values - r.lower_margins)


def test_returns_series_result_through_the_engine():
    x = _counts(300)
    r = detect_stream_values(x)
    assert isinstance(r, SeriesResult)
    for a in (r.expected_values, r.upper_margins, r.lower_margins, r.is_anomaly, r.severity):
        assert a.shape == x.shape
    np.testing.assert_array_equal(r.is_anomaly, stream_detect(x).is_anomaly)


def test_causal_decisions_do_not_change_when_points_are_appended():
    x = _counts(24 * 30, seed=1)
    x[400] *= 5
    x[600:] += 60
    full = detect_stream_values(x)
    for cut in (150, 401, 520, 650):
        part = detect_stream_values(x[:cut])
        np.testing.assert_array_equal(part.is_anomaly, full.is_anomaly[:cut])
        np.testing.assert_allclose(part.expected_values, full.expected_values[:cut])


def test_early_points_are_not_flagged():
    x = _counts(200, seed=2)
    x[5] = 1000
    x[30] = 0
    r = detect_stream_values(x)
    assert not r.is_anomaly[:49].any()


@pytest.mark.parametrize("seed", [3, 4])
def test_flagged_iff_outside_band(seed):
    x = _counts(24 * 25, seed=seed)
    x[[250, 330, 470]] *= np.array([6.0, 0.05, 4.0])
    x[380:440] += 90
    x[100:103] = np.nan
    r = detect_stream_values(x)
    ok = np.isfinite(x)
    np.testing.assert_array_equal(r.is_anomaly[ok], _outside(x, r)[ok])
    assert np.all(r.upper_margins >= 0) and np.all(r.lower_margins >= 0)
    assert np.all((r.severity > 0) == r.is_anomaly) and np.all(r.severity <= 1)
    assert np.all(r.is_anomaly == (r.is_positive_anomaly | r.is_negative_anomaly))


def test_higher_sensitivity_flags_at_least_as_many_points():
    rng = np.random.default_rng(5)
    x = rng.normal(100, 5, 1500)
    idx = rng.choice(np.arange(200, 1500), 25, replace=False)
    x[idx] += rng.uniform(15, 60, idx.size) * rng.choice([-1, 1], idx.size)
    counts = [detect_stream_values(x, sensitivity=s).is_anomaly.sum() for s in (50, 80, 90, 95, 99)]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]


def test_clear_spike_is_flagged():
    x = _counts(24 * 20, seed=6)
    x[300] = x[300] * 6 + 50
    r = detect_stream_values(x)
    assert r.is_anomaly[300] and r.is_positive_anomaly[300]
    assert r.severity[300] > 0
    assert r.is_anomaly.sum() <= 4


def test_level_shift_is_flagged_then_becomes_normal():
    rng = np.random.default_rng(7)
    x = np.r_[rng.normal(100, 3, 600), rng.normal(150, 3, 600)]
    r = detect_stream_values(x)
    assert r.is_anomaly[600:612].any()
    assert r.is_anomaly[900:].mean() < 0.01


@pytest.mark.parametrize(
    "x",
    [
        np.zeros(12),
        np.zeros(500),
        np.full(300, 7.0),
        np.full(12, np.nan),
        np.r_[np.full(20, np.nan), np.ones(40)],
        np.r_[np.ones(100), np.full(30, np.nan), np.ones(100)],
        np.array([1.0]),
        np.array([], dtype=float),
        np.r_[np.full(200, -3.5), -3.5 + np.zeros(100)],
    ],
)
def test_degenerate_series_do_not_crash(x):
    r = detect_stream_values(x)
    assert r.is_anomaly.sum() == 0
    assert np.all(np.isfinite(r.expected_values)) or x.size == 0


def test_nan_gaps_are_never_flagged():
    x = _counts(24 * 12, seed=8)
    x[150:160] = np.nan
    x[200] = x[200] * 6 + 50
    r = detect_stream_values(x)
    assert not r.is_anomaly[150:160].any()
    assert r.is_anomaly[200]


def test_repeated_pattern_stops_being_novel():
    rng = np.random.default_rng(9)
    mem = ShapeMemory(width=8)
    for v in rng.normal(0, 0.1, 300):  # learn the noise
        mem.step(v)
    bump = np.r_[np.linspace(0, 5, 6), np.linspace(5, 0, 6), np.zeros(40)]
    peaks = []
    for _ in range(5):
        peaks.append(max(mem.step(v + rng.normal(0, 0.1)) for v in bump))
    assert peaks[0] > 5  # never seen: far from everything in memory
    assert peaks[-1] < 0.3 * peaks[0]  # seen before: close to a stored window


def test_period_found_on_history():
    assert find_period(np.sqrt(_counts(24 * 12, seed=10))) == 24
    assert find_period(np.random.default_rng(11).normal(size=500)) in range(0, 500)
    assert find_period(np.ones(100)) == 0


def test_a_calendar_cycle_near_the_autocorrelation_peak_is_the_period():
    # 14 cycles of 23 points: alone it is a 23-point period; a 24-point day (hourly data) is
    # within 8% of it, and the autocorrelation of a few noisy cycles cannot tell them apart
    x = _counts(23 * 14, period=23, seed=13)
    assert find_period(np.sqrt(x)) == 23
    assert find_period(np.sqrt(x), natural=(24, 168)) == 24
    assert find_period(np.sqrt(x), natural=(60, 1440)) == 23  # no calendar cycle nearby


def test_the_stream_models_the_day_of_hourly_counts_when_it_predicts_them():
    # five days of hourly counts: too few noisy cycles for a period without the calendar
    day = _counts(24 * 5, period=24, base=30.0, seed=0)
    assert detect_stream_values(day).period == 0
    assert detect_stream_values(day, natural_periods=(24, 168)).period == 24
    # a real 23-point cycle: a 24-point profile predicts it badly, the measured lag wins
    assert seasonal_gain(np.sqrt(_counts(23 * 14, period=23, seed=13)), 24) < 0.33
    assert detect_stream_values(_counts(23 * 14, period=23, seed=13), natural_periods=(24, 168)).period == 23
    # pure noise has no period worth modelling, calendar or not
    noise = np.random.default_rng(14).poisson(30, 24 * 10).astype(float)
    assert detect_stream_values(noise, natural_periods=(24, 168)).period == 0


def test_huge_early_excursion_does_not_mute_later_clear_events():
    rng = np.random.default_rng(12)
    x = rng.normal(100, 2, 3000)
    x[300] = 2000  # an enormous early excursion
    x[2500] = 160  # a later, smaller but still clear spike (30 sigma)
    r = detect_stream_values(x)
    assert r.is_anomaly[2500:2506].any()


def test_one_alarm_per_event():
    rng = np.random.default_rng(13)
    x = np.r_[rng.normal(50, 2, 800), rng.normal(90, 2, 30), rng.normal(50, 2, 400)]
    r = detect_stream_values(x)
    assert r.is_anomaly[800:830].sum() == 1


def test_spike_recurring_at_the_same_height_stops_alarming():
    rng = np.random.default_rng(14)
    x = np.abs(rng.normal(1.0, 0.2, 4000))
    times = np.cumsum(rng.integers(250, 320, 13)) + 200  # a job drifting from day to day
    times = times[times < 3800]
    x[times] = rng.uniform(85, 95, times.size)
    r = detect_stream_values(x)
    late = times[times > 2500]
    assert not r.is_anomaly[late[0] : late[-1] + 5].any()
    loud = stream_detect(x, config={"familiar_count": 0})  # without the familiarity rule
    assert loud.is_anomaly[late[0] : late[-1] + 5].any()
    # a new kind of excursion (a level shift) still alarms after the familiar spikes
    y = x.copy()
    y[3900:3960] = 5.0
    assert detect_stream_values(y).is_anomaly[3900:3965].any()


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_counts_alarm_on_a_burst_not_on_their_poisson_noise(seed):
    # a count that is mostly 0 with the odd 1 to 3: such windows differ from each other only by
    # Poisson noise, so they must not read as novel shapes; a real burst still alarms at once
    rng = np.random.default_rng(seed)
    x = rng.poisson(0.3, 4000).astype(float)
    x[3000:3012] = rng.poisson(15, 12)
    flagged = np.flatnonzero(stream_detect(x).is_anomaly)
    assert flagged.tolist() == [3001]
    without_floor = np.flatnonzero(stream_detect(x, config={"shape_count_floor": 0.0}).is_anomaly)
    assert len(without_floor) > 5  # the floor is what silences the noise


def test_familiar_excursions_need_enough_similar_past_alarms():
    from anomaly_pipeline.detection.stream_familiar import FamiliarExcursions

    memory = FamiliarExcursions(count=3)

    def event(value, deviation, peak, threshold=1.0):
        for score in (0.9, peak, 0.9):
            memory.observe(score, value, deviation, threshold, remember=True)
        memory.observe(0.1, 0.0, 0.0, threshold, remember=True)  # the event ends

    for height in (10.0, 10.5, 9.8):
        assert not memory.is_familiar(height, height, 2.0)  # fewer than 3 such events so far
        event(height, height, peak=2.0)
    assert memory.is_familiar(10.2, 10.2, 2.0)  # the fourth spike to about the same height
    assert not memory.is_familiar(20.0, 20.0, 2.0)  # twice as far is new
    assert not memory.is_familiar(-10.0, -10.0, 2.0)  # the other side is new
    assert not memory.is_familiar(10.0, 10.0, 3.0)  # past peaks under 80% of this score do not count
    event(30.0, 30.0, peak=0.95, threshold=1.0)  # never crossed the alarm threshold: not remembered
    assert len(memory.past) == 3


def test_the_calendar_cycle_that_predicts_best_is_kept():
    # five weeks of noisy hourly counts with a strong day and a weak week: the autocorrelation
    # points to the week, whose profile (five noisy values per phase) predicts worse than the day's
    rng = np.random.default_rng(4)
    t = np.arange(24 * 33)
    lam = 60 * (1 + 0.6 * np.sin(2 * np.pi * t / 24)) * (1 + 0.25 * np.sin(2 * np.pi * t / 168))
    x = rng.poisson(lam).astype(float) * rng.lognormal(0, 0.35, t.size)
    history = np.sqrt(x[:784])  # what the last period check sees
    assert find_period(history, natural=(24, 168)) == 168
    assert seasonal_gain(history, 168) < 0.33 <= seasonal_gain(history, 24)
    assert detect_stream_values(x, natural_periods=(24, 168)).period == 24
