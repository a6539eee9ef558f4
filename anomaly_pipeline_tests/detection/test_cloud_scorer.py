"""The cloud-monitoring event scorer (bench/cloud_monitoring.py) follows its README rule for rule."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from cloud_monitoring import PROBATION_ROWS, CloudSeries, score_series, summarise  # noqa: E402


def _series(n: int, labelled: list[tuple[int, int]]) -> CloudSeries:
    labels = np.zeros(n, dtype=bool)
    for a, b in labelled:
        labels[a : b + 1] = True
    stamps = np.datetime64("2026-01-01T00:00:00") + np.arange(n).astype("timedelta64[h]")
    return CloudSeries("cloud/test", stamps, np.ones(n), labels)


def test_events_windows_probation_false_alarms_and_delays():
    s = _series(300, [(10, 12), (100, 104), (200, 200), (299, 299)])
    assert s.events == [(100, 104), (200, 200), (299, 299)]  # the event in the probation is not counted
    assert s.windows == [(100, 107), (200, 203), (299, 299)]  # 3 rows after each, cut at the end
    alarms = np.zeros(300, dtype=bool)
    alarms[[11, 50, 102, 103, 106, 150, 151, 250]] = True  # 11: probation; 103: extra alarm in a hit window
    score = score_series(alarms, s)
    assert (score.detected, score.events, score.false_alarms) == (1, 3, 3)
    assert score.delays == [2] and score.scored_rows == 300 - PROBATION_ROWS
    summary = summarise([score])
    assert summary.precision == pytest.approx(1 / 4) and summary.recall == pytest.approx(1 / 3)
    assert summary.f1 == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))
    assert summary.false_alarms_per_1000 == pytest.approx(1000 * 3 / 228)


def test_the_nab_like_score_is_100_on_first_rows_and_0_when_silent():
    s = _series(300, [(100, 104), (200, 201)])
    perfect = np.zeros(300, dtype=bool)
    perfect[[100, 200]] = True
    assert summarise([score_series(perfect, s)]).nab_like == pytest.approx(100.0)
    assert summarise([score_series(np.zeros(300, dtype=bool), s)]).nab_like == pytest.approx(0.0)
    late = np.zeros(300, dtype=bool)
    late[[104, 201]] = True
    assert 0 < summarise([score_series(late, s)]).nab_like < 100
