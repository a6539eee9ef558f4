"""The NAB scorer on tiny hand-made cases."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from nab import hourly_file, hourly_tweet_volume, NabFile, normalised, probation_rows, scaled_sigmoid, score_file  # noqa: E402

N = 1000  # probation = 150 rows
WIN = [(400, 499)]


def _det(*idx, n=N):
    d = np.zeros(n, dtype=bool)
    d[list(idx)] = True
    return d


def test_sigmoid_shape():
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(0.5) < 0
    assert scaled_sigmoid(3.5) == -1.0
    assert probation_rows(1000) == 150
    assert probation_rows(100000) == 750


def test_null_and_perfect():
    null = score_file(_det(), WIN, N)
    assert null.raw == pytest.approx(-1.0) and null.fn == 1 and null.tp == 0
    perfect = score_file(_det(400), WIN, N)
    assert perfect.raw == pytest.approx(perfect.perfect)
    # NAB divides a TP's sigmoid by sigma(-1): a detection at the left edge earns exactly A_TP
    assert perfect.raw == pytest.approx(1.0) and perfect.perfect == pytest.approx(1.0)
    assert normalised([null]) == pytest.approx(0.0)
    assert normalised([perfect]) == pytest.approx(100.0)


def test_only_first_detection_in_window_counts_and_earlier_is_better():
    early = score_file(_det(410), WIN, N)
    late = score_file(_det(490), WIN, N)
    both = score_file(_det(410, 420, 490), WIN, N)
    assert early.raw > late.raw > 0
    assert both.raw == pytest.approx(early.raw) and both.fp == 0 and both.tp == 1
    # position -(right - i + 1) / width, scaled by 1 / sigma(-1)
    assert early.raw == pytest.approx(scaled_sigmoid(-(499 - 410 + 1) / 100) / scaled_sigmoid(-1.0))
    # later detections in a window are neither TP nor FP, whatever their number
    many = score_file(_det(*range(410, 500)), WIN, N)
    assert many.raw == pytest.approx(early.raw) and many.fp == 0


def test_false_positives():
    before = score_file(_det(300), WIN, N)  # no window before it: full cost
    assert before.fp == 1 and before.raw == pytest.approx(-0.11 - 1.0)
    just_after = score_file(_det(505), WIN, N)  # just past the window: almost free
    far_after = score_file(_det(900), WIN, N)
    # distance past the window in units of (width - 1), as NAB's sweeper
    assert just_after.raw == pytest.approx(-1.0 + 0.11 * scaled_sigmoid(6 / 99))
    assert far_after.raw == pytest.approx(-1.0 - 0.11)
    assert far_after.raw < just_after.raw < -1.0 + 1e-9


def test_probation_is_not_scored():
    assert score_file(_det(100), WIN, N).raw == pytest.approx(-1.0)
    # a window lying wholly inside the probation period is left out
    assert score_file(_det(), [(10, 50)], N).null == 0.0
    # ... but it is still the "previous window" of a false positive after the probation
    fp = score_file(_det(160), [(10, 50)], N)
    assert fp.fp == 1 and fp.fn == 0 and fp.raw == pytest.approx(0.11 * scaled_sigmoid(110 / 40))
    # a window straddling the probation end is scored; detections inside the probation are not
    st = score_file(_det(140), [(100, 199)], N)
    assert st.fn == 1 and st.tp == 0 and st.raw == pytest.approx(-1.0)
    st = score_file(_det(160), [(100, 199)], N)
    assert st.tp == 1 and st.raw == pytest.approx(scaled_sigmoid(-40 / 100) / scaled_sigmoid(-1.0))


def test_profiles_and_sums():
    a = score_file(_det(450, 800), WIN, N, profile="reward_low_FP")
    b = score_file(_det(), WIN, N, profile="reward_low_FN")
    assert a.raw == pytest.approx(scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0) + 0.22 * scaled_sigmoid(301 / 99))
    assert b.raw == pytest.approx(-2.0)
    s1, s2 = score_file(_det(400), WIN, N), score_file(_det(), WIN, N)
    assert normalised([s1, s2]) == pytest.approx(50.0)


def test_hourly_track_sums_each_file_per_clock_hour():
    # 00:50 .. 06:55 every 5 minutes: the partial first hour (00:xx, 2 rows) is dropped
    ts = np.arange(np.datetime64("2015-01-01T00:50:00"), np.datetime64("2015-01-01T07:00:00"), np.timedelta64(5, "m"))
    f1 = NabFile("realTweets/a.csv", ts, np.ones(ts.size), [(16, 17)])  # 02:10 - 02:15
    f2 = NabFile("realTweets/b.csv", ts, 2 * np.ones(ts.size), [(0, 20)])  # 00:50 - 02:30
    f3 = NabFile("realKnownCause/c.csv", ts, np.ones(ts.size), [])
    h1, h2 = hourly_tweet_volume([f1, f2, f3])
    assert h1.name == "hourly/a.csv" and h2.name == "hourly/b.csv"
    assert h1.values.size == 6 and np.all(h1.values == 12.0) and np.all(h2.values == 24.0)
    assert h1.timestamps[0] == np.datetime64("2015-01-01T01:00:00")
    assert h1.windows == [(1, 1)]  # widened to the whole hour 02:00
    assert h2.windows == [(0, 1)]  # 01:00 - 02:00 (the dropped partial hour is cut off)
    # an incomplete last hour is dropped as well
    h = hourly_file(NabFile("realTweets/d.csv", ts[2:-3], np.ones(ts.size - 5), []))
    assert h.values.size == 5 and np.all(h.values == 12.0)
