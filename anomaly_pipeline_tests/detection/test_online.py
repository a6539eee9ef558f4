"""The online detector: causal, finite-memory verdicts from a small robust model (fast: small series)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from anomaly_pipeline.detection.online import (
    COUNTS,
    DEFAULT_SETTINGS,
    MIN_TAIL_POINTS,
    NON_NEGATIVE,
    REAL,
    TAIL_QUANTILES,
    _median_with,
    _rise_bound,
    _row_median,
    _row_quantiles,
    detect,
    detect_recent,
    false_alarm_rate,
    infer_kind,
    memory_points,
    threshold,
)

HOURLY = DEFAULT_SETTINGS.for_step(3600)
BUDGET_95 = false_alarm_rate(95)  # false alarms an hour at the default sensitivity
WEEK = 168


def _seasonal_counts(weeks: float, base=40.0, seed=0) -> np.ndarray:
    """Hourly Poisson counts with a daily and a weekly cycle and no anomaly."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(weeks * WEEK))
    daily = 1 + 0.6 * np.sin(2 * np.pi * t / 24)
    weekly = 1 - 0.3 * ((t // 24) % 7 >= 5)  # quieter weekends
    return rng.poisson(base * daily * weekly).astype(float)


def _outside(x, r):
    return (x > r.expected + r.upper_margin) | (x < r.expected - r.lower_margin)


def test_kinds_are_inferred_from_the_values():
    assert infer_kind(np.array([0.0, 3, 7, np.nan])) == COUNTS
    assert infer_kind(np.array([0.5, 3, 7])) == NON_NEGATIVE
    assert infer_kind(np.array([-1.0, 3, 7])) == REAL
    assert infer_kind(np.full(3, np.nan)) == REAL
    with pytest.raises(ValueError, match="infinite"):
        detect(np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="non-negative.*negative value"):
        detect(np.array([0.5, -1.0, 2.0]), kind=NON_NEGATIVE)


def test_verdicts_do_not_change_when_points_are_appended():
    x = _seasonal_counts(6, seed=1)
    x[400] *= 5
    x[600:] += 30
    full = detect(x, settings=HOURLY)
    for cut in (150, 401, 620, 900):
        part = detect(x[:cut], settings=HOURLY)
        np.testing.assert_array_equal(part.is_anomaly, full.is_anomaly[:cut])
        np.testing.assert_array_equal(part.expected, full.expected[:cut])


def _seasonal_rates(weeks: float, seed=0) -> np.ndarray:
    """Hourly non-negative values whose spread grows with a daily and weekly level (gamma noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(weeks * WEEK))
    level = 40.0 * (1 + 0.6 * np.sin(2 * np.pi * t / 24)) * (1 - 0.3 * ((t // 24) % 7 >= 5))
    return rng.gamma(10.0, level / 10.0)  # coefficient of variation 0.32


@pytest.mark.parametrize("make, burst", [(_seasonal_counts, 4), (_seasonal_rates, 8)])
def test_a_verdict_depends_only_on_the_detectors_memory(make, burst):
    x = make(16, seed=2)
    x[2300:2303] *= burst
    memory = memory_points(HOURLY)
    first = 2200
    assert memory < first < x.size - 200
    one_pass = detect_recent(x, first, history=memory, settings=HOURLY)
    for t in (first, 2300, 2301, 2400, x.size - 1):
        alone = detect(x[t - memory + 1 : t + 1], settings=HOURLY)
        i = t - first
        assert one_pass.is_anomaly[i] == alone.is_anomaly[-1]
        assert one_pass.expected[i] == alone.expected[-1]
        assert one_pass.upper_margin[i] == alone.upper_margin[-1]
    assert one_pass.is_anomaly[2300 - first]  # the burst


@pytest.mark.parametrize(
    "x",
    [
        1e7 + np.random.default_rng(1).normal(0, 1, 4000),  # a huge level that barely moves
        np.where(np.random.default_rng(3).random(4000) < 0.08, 1.5 + np.random.default_rng(4).gamma(2, 1, 4000), 1.5),
    ],
    ids=["huge level", "constant level with spikes"],
)
def test_the_power_scale_choice_does_not_depend_on_where_the_series_starts(x):
    """The spread-grows test is computed window by window, so judging a point with its memory
    alone gives the verdict and band of the whole series' pass, even where rounding would differ."""
    x = x.copy()
    x[2280] += 0.035 * np.nanmean(x) + 20
    memory = memory_points(HOURLY)
    one_pass = detect_recent(x, memory + 1, history=memory, settings=HOURLY)
    for t in range(memory + 1, x.size, 53):
        alone = detect(x[t - memory + 1 : t + 1], settings=HOURLY)
        i = t - memory - 1
        assert one_pass.is_anomaly[i] == alone.is_anomaly[-1]
        np.testing.assert_allclose(one_pass.upper_margin[i], alone.upper_margin[-1], rtol=1e-9)


def test_a_short_history_is_judged_window_by_window():
    x = _seasonal_counts(3, seed=3)
    r = detect_recent(x, 400, history=72, settings=HOURLY)
    for t in (400, 450, x.size - 1):
        alone = detect(x[t - 71 : t + 1], settings=HOURLY)
        assert r.expected[t - 400] == alone.expected[-1]


def test_a_history_reaching_the_series_start_is_judged_like_its_prefixes():
    """``--mode stream`` passes the whole series as history: shorter than the memory, yet every
    window is a prefix, so one pass must give the verdicts of the window-by-window definition."""
    x = _seasonal_counts(5, seed=14)
    x[[300, 610]] *= 5
    whole = detect_recent(x, 0, history=x.size, settings=HOURLY)
    mixed = detect_recent(x, 200, history=500, settings=HOURLY)
    for t in (250, 300, 499, 610, x.size - 1):
        alone = detect(x[max(0, t - 499) : t + 1], settings=HOURLY)
        assert mixed.is_anomaly[t - 200] == alone.is_anomaly[-1] and mixed.expected[t - 200] == alone.expected[-1]
    np.testing.assert_array_equal(whole.is_anomaly, detect(x, settings=HOURLY).is_anomaly)
    assert whole.is_anomaly[300] and whole.is_anomaly[610]


@pytest.mark.parametrize("seed", [4, 5])
def test_an_anomaly_is_a_point_outside_the_band_at_an_event_start(seed):
    x = _seasonal_counts(5, seed=seed)
    x[[250, 342, 470]] = np.round(x[[250, 342, 470]] * np.array([6.0, 0.0, 6.0]))  # 342: a daily peak
    x[560:620] += 60
    x[100:103] = np.nan
    r = detect(x, settings=HOURLY)
    judged = r.judged
    assert np.all(r.is_anomaly <= (_outside(x, r) & judged))  # flagged => outside the band
    assert np.all(r.upper_margin[judged] >= 0) and np.all(r.lower_margin[judged] >= 0)
    assert np.all((r.severity > 0) == r.is_anomaly) and np.all(r.severity <= 1)
    assert np.all(r.is_anomaly == (r.is_positive | r.is_negative))
    assert r.is_positive[250] and r.is_negative[342] and r.is_positive[470]
    assert not r.judged[100:103].any() and not r.is_anomaly[100:103].any()


def test_higher_sensitivity_means_a_larger_false_alarm_budget():
    rates = [false_alarm_rate(s) for s in (50, 80, 90, 95, 99)]
    assert rates == sorted(rates) and rates[3] == DEFAULT_SETTINGS.false_alarm_rate_95
    assert threshold(99) < threshold(95) < threshold(50)
    rng = np.random.default_rng(6)
    x = rng.normal(100, 5, 1500)
    x[rng.choice(np.arange(200, 1500), 25, replace=False)] += rng.uniform(12, 40, 25)
    counts = [detect(x, sensitivity=s).is_anomaly.sum() for s in (50, 80, 95, 99)]
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_severity_ranks_anomalies_by_surprise():
    x = _seasonal_counts(4, seed=7)
    x[300] += 90
    x[500] += 250
    r = detect(x, settings=HOURLY)
    assert r.is_anomaly[300] and r.is_anomaly[500]
    assert 0 < r.severity[300] < r.severity[500] <= 1


def test_sparse_counts_do_not_alarm_on_every_one_after_zeros():
    rng = np.random.default_rng(8)
    x = rng.poisson(0.3, 8 * WEEK).astype(float)  # mostly 0, now and then 1 to 3
    assert (x >= 1).sum() > 200
    r = detect(x, settings=HOURLY)
    assert r.is_anomaly.sum() <= BUDGET_95 * x.size  # within the false-alarm budget...
    assert not (r.is_anomaly & (x <= 1)).any()  # ...and never on a lone 1
    x[1000] = 15  # a real burst still alarms
    assert detect(x, settings=HOURLY).is_anomaly[1000]


def test_a_mostly_zero_real_series_does_not_alarm_on_every_value():
    """Its median error is 0 (most hours are exactly 0): the mean error keeps the scale honest."""
    rng = np.random.default_rng(11)
    x = np.where(rng.random(6 * WEEK) < 0.2, rng.uniform(30, 200, 6 * WEEK), 0.0)  # sporadic latencies
    r = detect(x, kind=REAL, settings=HOURLY)
    assert r.is_anomaly.sum() <= 3 * BUDGET_95 * x.size  # not one alarm per non-zero hour
    x[800] = 5000.0  # a value far beyond the usual ones still alarms
    assert detect(x, kind=REAL, settings=HOURLY).is_anomaly[800]


def test_a_non_negative_series_whose_spread_grows_with_its_level_is_judged_on_a_power_scale():
    """Gamma noise (spread proportional to the level) around a daily profile, six series: judged as
    they are, their long upper tails raise more false alarms; on x ** growth_power (chosen because
    level and error correlate) fewer, within the budget of its two tests, with a band wider above than below; a
    spike still alarms."""
    t = np.arange(12 * WEEK)
    level = 20.0 * (1 + 0.5 * np.sin(2 * np.pi * t / 24))
    shape = 1 / 0.3**2  # coefficient of variation 0.3
    series = [np.random.default_rng(seed).gamma(shape, level / shape) for seed in range(13, 19)]
    assert {infer_kind(x) for x in series} == {NON_NEGATIVE}
    as_real = sum(int(detect(x, kind=REAL, settings=HOURLY).is_anomaly.sum()) for x in series)
    as_non_negative = sum(int(detect(x, settings=HOURLY).is_anomaly.sum()) for x in series)
    assert as_non_negative < as_real
    assert as_non_negative <= 2 * BUDGET_95 * t.size * len(series)  # two tests, each at the budget
    x = series[0]
    point_band = detect(x, settings=replace(HOURLY, shift_hours=0.0))  # the band of the point test alone
    late = point_band.judged & (t >= 2 * WEEK)
    assert np.all(point_band.upper_margin[late] > point_band.lower_margin[late])
    x[1500] = 4 * level[1500]
    assert detect(x, settings=HOURLY).is_anomaly[1500]


def test_a_non_negative_series_whose_spread_does_not_grow_is_judged_as_it_is():
    """Constant noise around a daily profile (a latency, say): its verdicts and band are those
    of the series judged as real values."""
    rng = np.random.default_rng(14)
    t = np.arange(8 * WEEK)
    x = 60 + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 3, t.size)
    x[900] += 60
    assert infer_kind(x) == NON_NEGATIVE
    as_non_negative, as_real = detect(x, settings=HOURLY), detect(x, kind=REAL, settings=HOURLY)
    np.testing.assert_array_equal(as_non_negative.is_anomaly, as_real.is_anomaly)
    np.testing.assert_allclose(as_non_negative.upper_margin, as_real.upper_margin)
    assert as_non_negative.is_anomaly[900]


def test_frequent_large_spikes_keep_alarming():
    """Spikes filling 8% of the hours would teach an uncapped tail that they are normal. (The
    daily-pattern rule is off here: spikes this frequent find precedents at the same time of day.)"""
    rng = np.random.default_rng(12)
    x = rng.normal(50, 5, 8 * WEEK)
    spikes = np.cumsum(rng.integers(8, 17, x.size // 8))  # every 8 to 16 hours, each its own event
    spikes = spikes[spikes < x.size]
    x[spikes] += 1000  # 200 sigmas: crash spikes of 20 times the usual level
    r = detect(x, settings=replace(HOURLY, precedent_days=0))
    late = spikes[spikes >= 5 * WEEK]
    assert r.is_anomaly[late].mean() > 0.9
    assert not r.is_anomaly[np.setdiff1d(np.arange(5 * WEEK, x.size), late)].any()


def test_a_spike_that_comes_every_day_is_the_daily_pattern():
    """A spike near 14:00 every day, an hour early or late, is not predicted by the same-hour
    median; the daily-pattern rule knows it. The same spike at night, or three times taller, is news."""
    rng = np.random.default_rng(15)
    days = 35
    x = rng.normal(100, 3, days * 24)
    daily = np.arange(days) * 24 + 14 + rng.integers(-1, 2, days)
    x[daily] += 60
    night = 30 * 24 + 3
    x[night] += 60
    x[daily[31]] += 140
    r = detect(x, settings=HOURLY)
    without = detect(x, settings=replace(HOURLY, precedent_days=0))
    usual = np.setdiff1d(daily[7:], daily[31])
    assert without.is_anomaly[usual].mean() > 0.9
    assert r.is_anomaly[usual].mean() < 0.4  # a spike alarms only when taller than all but one of the last 7 days'
    assert r.is_anomaly[night] and r.is_anomaly[daily[31]]


def test_an_event_alarms_once_unless_it_grows_and_a_new_event_alarms_again():
    rng = np.random.default_rng(13)
    x = rng.normal(100, 3, 900)
    x[600:606] += np.array([30, 35, 40, 45, 50, 55])  # a ramp: one event, growing less than 3 x
    x[700:702] += 40  # a new event after quiet hours
    x[703] += 400  # ...that grows tenfold within it
    alarms = np.flatnonzero(detect(x, settings=HOURLY).is_anomaly)
    assert alarms[(alarms >= 600) & (alarms < 606)].tolist() == [600]
    assert alarms[(alarms >= 700) & (alarms < 710)].tolist() == [700, 703]


def test_a_level_shift_is_alarmed_once_then_is_the_new_normal():
    rng = np.random.default_rng(9)
    x = np.r_[rng.normal(100, 3, 600), rng.normal(130, 3, 600)]
    r = detect(x, settings=HOURLY)
    alarms = np.flatnonzero(r.is_anomaly)
    assert alarms.size and 600 <= alarms[alarms >= 600][0] < 603
    assert np.sum((alarms >= 600) & (alarms < 624)) <= 2  # one event (it may alarm again as it grows)
    assert not r.is_anomaly[624 : 624 + 168].any()  # the week after: the new level is normal
    assert abs(r.expected[700] - 130) < 3


def test_a_shift_too_small_for_any_one_point_alarms_once_when_it_is_sustained():
    """Five-minute data: a rise of 1.5 sigmas (no point of it beyond the point threshold) held for
    3 hours alarms once, at a point that lies outside its (narrowed) band; with the sustained-shift
    test off it goes unseen. The same rise for 20 minutes stays quiet."""
    five_minutes = DEFAULT_SETTINGS.for_step(300)
    rng = np.random.default_rng(21)
    x = rng.normal(100.0, 3.0, 12 * 24 * 12)
    shift, blip = slice(3000, 3036), slice(3300, 3304)
    x[shift] += 4.5
    x[blip] += 4.5
    r = detect(x, settings=five_minutes)
    off = detect(x, settings=replace(five_minutes, shift_hours=0.0))
    alarms = np.flatnonzero(r.is_anomaly[shift]) + shift.start
    assert alarms.size == 1 and alarms[0] < shift.start + 24
    assert not off.is_anomaly[shift].any() and not off.is_anomaly[blip].any() and not r.is_anomaly[blip].any()
    assert _outside(x, r)[alarms[0]] and not _outside(x, off)[alarms[0]]
    assert r.is_positive[alarms[0]] and 0 < r.severity[alarms[0]] <= 1
    added = np.flatnonzero(r.is_anomaly & ~off.is_anomaly)
    assert set(added) <= {alarms[0]}  # on this clean series, the shift test raises nothing else


def test_a_spike_is_ranked_by_the_point_test_where_the_shift_test_does_not_fire():
    """On correlated 5-minute noise, spikes judged anomalous with the sustained-shift test on or
    off get the same severity: a span's median that did not pass its threshold ranks nothing."""
    five_minutes = DEFAULT_SETTINGS.for_step(300)
    rng = np.random.default_rng(3)
    noise, steps = np.zeros(12 * 24 * 40), rng.normal(0, 1, 12 * 24 * 40)
    for i in range(1, noise.size):  # AR(1): neighbouring surprises are correlated
        noise[i] = 0.9 * noise[i - 1] + steps[i]
    x = 100.0 + noise
    x[rng.integers(5000, x.size - 50, 15)] += rng.uniform(6, 15, 15)
    r = detect(x, settings=five_minutes)
    point_only = detect(x, settings=replace(five_minutes, shift_hours=0.0))
    both = r.is_anomaly & point_only.is_anomaly
    assert both.sum() >= 5
    np.testing.assert_array_equal(r.severity[both], point_only.severity[both])


def test_a_gap_does_not_turn_the_shift_test_into_a_point_test_on_a_lower_threshold():
    """Right after two hours of missing data the span holds the point alone: the shift test stays
    off there, so a 2.7-sigma point is judged by the point test only (same band, no alarm)."""
    five_minutes = DEFAULT_SETTINGS.for_step(300)
    x = np.random.default_rng(3).normal(100.0, 3.0, 12 * 24 * 35)
    t = x.size - 100
    x[t - 24 : t] = np.nan
    x[t] = 108.0
    r = detect(x, settings=five_minutes)
    point_only = detect(x, settings=replace(five_minutes, shift_hours=0.0))
    assert r.judged[t] and not r.is_anomaly[t]
    assert r.upper_margin[t] == point_only.upper_margin[t] and r.lower_margin[t] == point_only.lower_margin[t]


@pytest.mark.parametrize("width", [1, 2, 5, 24])
def test_the_median_with_a_new_value_is_the_median_of_all(width):
    """``_median_with`` (the sustained-shift test's median of the previous values and the point's
    own, as a function of that value) gives numpy's nanmedian, on windows with gaps and none."""
    rng = np.random.default_rng(width)
    previous = rng.normal(0, 2, (300, width))
    previous[rng.random(previous.shape) < 0.3] = np.nan
    previous[:10] = np.nan
    a, b, lo, hi = _median_with(previous)
    for v in (-5.0, -0.5, 0.0, 0.3, 1.0, 6.0):
        with np.errstate(all="ignore"):
            expected = np.nanmedian(np.c_[previous, np.full(len(previous), v)], axis=1)
        np.testing.assert_allclose(a * np.clip(v, lo, hi) + b, expected, rtol=0, atol=1e-12)


def test_the_rise_bound_is_where_the_median_passes_its_target():
    """For v > 0, the median passes the target exactly when v exceeds ``_rise_bound`` (and, on the
    negated values, a drop), checked against the median itself on a fine grid of v."""
    rng = np.random.default_rng(5)
    previous = rng.normal(0, 2, (400, 5))
    previous[rng.random(previous.shape) < 0.2] = np.nan
    target = rng.uniform(-1, 3, 400)
    a, b, lo, hi = _median_with(previous)
    rise, drop = _rise_bound(a, b, lo, hi, target), _rise_bound(a, -b, -hi, -lo, target)
    assert np.isinf(rise).any() and (rise == 0).any() and ((rise > 0) & np.isfinite(rise)).any()
    for v in np.linspace(0.01, 12, 600):
        with np.errstate(all="ignore"):
            up = np.nanmedian(np.c_[previous, np.full(400, v)], axis=1)
            down = np.nanmedian(np.c_[previous, np.full(400, -v)], axis=1)
        np.testing.assert_array_equal(up > target, v > rise)
        np.testing.assert_array_equal(-down > target, v > drop)


def test_a_clean_seasonal_series_stays_under_the_false_alarm_budget():
    """The README's mapping: at sensitivity 95 the budget is false_alarm_rate_95 alarms an hour
    (one every ~2 weeks of a metric), measured by bench/bench_false_alarms.py; this test takes a
    year of clean hourly counts at two levels and checks the alarms stay within the budget."""
    years = [_seasonal_counts(26, base=b, seed=s) for s in range(2) for b in (5.0, 200.0)]
    alarms = sum(int(detect(x, settings=HOURLY).is_anomaly.sum()) for x in years)
    hours = sum(x.size for x in years)
    assert alarms <= BUDGET_95 * hours
    assert alarms >= 0.05 * BUDGET_95 * hours  # calibrated, not merely silent


def test_gaps_are_left_out_and_never_flagged():
    x = _seasonal_counts(3, seed=10)
    x[150:160] = np.nan
    x[200] = x[200] * 6 + 50
    r = detect(x, settings=HOURLY)
    assert not r.is_anomaly[150:160].any() and not r.judged[150:160].any()
    assert r.is_anomaly[200]


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
        np.full(300, -3.5),
    ],
)
def test_degenerate_series_do_not_crash_or_alarm(x):
    r = detect(x, settings=HOURLY)
    assert r.is_anomaly.sum() == 0
    assert r.expected.shape == x.shape


@pytest.mark.parametrize("early_tail", [1.0, 2.0])
def test_a_new_series_is_judged_with_the_early_threshold_until_its_tail_is_fitted(early_tail):
    """Before MIN_TAIL_POINTS residuals fit the tail, the band is ``early_tail`` Gaussian quantiles
    wide; once the tail is fitted (and the event rule's quiet hours have passed) the setting has
    no effect on any verdict."""
    x = 100 + 5 * np.random.default_rng(21).standard_t(3, 600)  # heavy-tailed noise
    settings = replace(HOURLY, early_tail=early_tail)
    r = detect(x, settings=settings)
    early = np.flatnonzero(r.judged[:MIN_TAIL_POINTS])
    assert early.size > 50
    outside = _outside(x, r)[early]
    np.testing.assert_array_equal(outside, r.surprise[early] > early_tail * threshold(95))
    # residuals start at hour 24, so the tail is fitted by about hour 125; 200 is past it
    fitted = 2 * MIN_TAIL_POINTS + HOURLY.points(HOURLY.quiet_hours)
    other = detect(x, settings=replace(HOURLY, early_tail=3.0 - early_tail))
    np.testing.assert_array_equal(r.is_anomaly[fitted:], other.is_anomaly[fitted:])
    assert (r.is_anomaly[:fitted] != other.is_anomaly[:fitted]).any()  # it did matter before


def test_severity_ranks_anomalies_before_the_tail_is_fitted():
    """In the first days (no tail fit yet) a 7-sigma spike outranks a 5-sigma one; neither is pinned at 1."""
    x = np.random.default_rng(0).poisson(100, 400).astype(float)
    x[60], x[70] = 200, 180  # judged from hour 24; the tail needs 100 residuals
    r = detect(x, settings=HOURLY)
    assert r.is_anomaly[60] and r.is_anomaly[70]
    assert 0 < r.severity[70] < r.severity[60] < 1


@pytest.mark.parametrize("width", [1, 2, 7, 168, 672])
def test_window_medians_and_quantiles_equal_numpys_bit_for_bit(width):
    """The sorted-row medians and quantiles the detector uses (for speed) give numpy's nanmedian
    and nanquantile exactly, on windows with gaps, ties, a single value or none."""
    rng = np.random.default_rng(width)
    rows = np.abs(rng.standard_t(3, (400, width)))
    rows[rng.random(rows.shape) < 0.3] = np.nan
    rows[:20] = np.nan  # no value
    rows[20:40, 1:] = np.nan  # one value
    rows[40:80] = np.round(rows[40:80], 1)  # ties
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        median = np.nanmedian(rows, axis=1)
        quantiles = np.nanquantile(rows, TAIL_QUANTILES, axis=1)
    (row_median, median_count), (row_quantiles, quantile_count) = (
        _row_median(rows),
        _row_quantiles(rows, TAIL_QUANTILES),
    )
    np.testing.assert_array_equal(row_median, median)
    np.testing.assert_array_equal(row_quantiles, quantiles)
    present = np.isfinite(rows).sum(axis=1)
    np.testing.assert_array_equal(median_count, present)
    np.testing.assert_array_equal(quantile_count, present)
