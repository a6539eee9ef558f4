"""The NAB scorer on tiny hand-made cases."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from nab import hourly_tweet_volume, NabFile, normalised, probation_rows, scaled_sigmoid, score_file  # noqa: E402

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
    assert perfect.raw == pytest.approx(scaled_sigmoid(-1.0))
    assert normalised([null]) == pytest.approx(0.0)
    assert normalised([perfect]) == pytest.approx(100.0)


def test_only_first_detection_in_window_counts_and_earlier_is_better():
    early = score_file(_det(410), WIN, N)
    late = score_file(_det(490), WIN, N)
    both = score_file(_det(410, 420, 490), WIN, N)
    assert early.raw > late.raw > 0
    assert both.raw == pytest.approx(early.raw) and both.fp == 0 and both.tp == 1
    # position -(right - i + 1) / width
    assert early.raw == pytest.approx(scaled_sigmoid(-(499 - 410 + 1) / 100))


def test_false_positives():
    before = score_file(_det(300), WIN, N)  # no window before it: full cost
    assert before.fp == 1 and before.raw == pytest.approx(-0.11 - 1.0)
    just_after = score_file(_det(505), WIN, N)  # just past the window: almost free
    far_after = score_file(_det(900), WIN, N)
    assert just_after.raw == pytest.approx(-1.0 + 0.11 * scaled_sigmoid(6 / 100))
    assert far_after.raw == pytest.approx(-1.0 - 0.11)
    assert far_after.raw < just_after.raw < -1.0 + 1e-9


def test_probation_is_not_scored():
    assert score_file(_det(100), WIN, N).raw == pytest.approx(-1.0)
    # a window lying wholly inside the probation period is left out
    assert score_file(_det(), [(10, 50)], N).null == 0.0


def test_profiles_and_sums():
    a = score_file(_det(450, 800), WIN, N, profile="reward_low_FP")
    b = score_file(_det(), WIN, N, profile="reward_low_FN")
    assert a.raw == pytest.approx(scaled_sigmoid(-0.5) + 0.22 * scaled_sigmoid(301 / 100))
    assert b.raw == pytest.approx(-2.0)
    s1, s2 = score_file(_det(400), WIN, N), score_file(_det(), WIN, N)
    assert normalised([s1, s2]) == pytest.approx(50.0)


def test_hourly_sum_widens_windows():
    ts = np.arange(np.datetime64("2015-01-01T00:00:00"), np.datetime64("2015-01-01T06:00:00"), np.timedelta64(5, "m"))
    f1 = NabFile("realTweets/a.csv", ts, np.ones(ts.size), [(14, 15)])  # 01:10 - 01:15
    f2 = NabFile("realTweets/b.csv", ts, 2 * np.ones(ts.size), [])
    h = hourly_tweet_volume([f1, f2])
    assert h.values.size == 6 and np.all(h.values == 36.0)
    assert h.windows == [(1, 1)]
