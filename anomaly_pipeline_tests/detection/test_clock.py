"""The clock stream mode lays a file's rows on: their own where they keep one, the nearest slot of
their usual clock where they are a little off it, file order where neither can be done."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from anomaly_pipeline.detection.api import detect_table
from anomaly_pipeline.detection.clock import (
    FILE_ORDER,
    NEAREST_SLOT,
    OFF_CLOCK,
    OWN_CLOCK,
    SHARED_SLOT,
    SPARSE,
    STEP_BACK,
    stream_clock,
)
from anomaly_pipeline.detection.errors import DetectionError
from anomaly_pipeline.detection.online import DEFAULT_SETTINGS, detect
from anomaly_pipeline.detection.request import MAX_SLOT_FACTOR, infer_granularity
from anomaly_pipeline_tests.detection.test_cli import COMMAND

START = datetime(2015, 9, 1, 11, 25, tzinfo=timezone.utc)
HOUR, FIVE_MINUTES = timedelta(hours=1), timedelta(minutes=5)


def _clock(stamps, granularity=None, interval=None, inferred=True):
    if granularity is None:
        granularity, interval = infer_granularity(stamps)
    return stream_clock(stamps, granularity, interval, inferred=inferred)


def _hourly_with_outage(n=24 * 20, outage=range(200, 209)):
    return [START + i * HOUR for i in range(n) if i not in outage]


def test_rows_on_one_clock_keep_their_timestamps_and_skipped_slots_stay_gaps():
    stamps = _hourly_with_outage()
    clock = _clock(stamps)
    assert (clock.layout, clock.first_odd_row, clock.timestamps) == (OWN_CLOCK, None, stamps)
    assert (clock.granularity, clock.custom_interval) == ("hourly", 1)


def test_rows_a_little_off_the_clock_go_to_their_nearest_slot_and_gaps_stay_gaps():
    """One row logged 2 minutes late must not close a 9-hour outage (which would put every later
    row 9 hours early and the daily cycle out of phase)."""
    stamps = _hourly_with_outage()
    late = list(stamps)
    late[7] += timedelta(minutes=2)
    assert infer_granularity(late) == ("minutely", 2)  # only a mostly empty 2-minute grid holds the rows
    clock = _clock(late)
    assert (clock.layout, clock.first_odd_row, clock.reason) == (NEAREST_SLOT, 7, OFF_CLOCK)
    assert clock.step == HOUR and clock.timestamps == stamps


def test_a_clock_drifting_a_second_a_report_is_a_five_minute_clock():
    rng = np.random.default_rng(1)
    stamps, t = [], START
    for _ in range(600):
        stamps.append(t)
        t += timedelta(seconds=300 + int(rng.integers(0, 3)))
    clock = _clock(stamps)
    assert clock.step == FIVE_MINUTES
    assert DEFAULT_SETTINGS.for_step(clock.step.total_seconds()).periods == (288, 2016)  # daily, weekly


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda s: s.__setitem__(20, s[10]), STEP_BACK),  # the clock steps back ten hours
        (lambda s: s.__setitem__(20, s[19] + timedelta(minutes=20)), SHARED_SLOT),  # two rows in one hour
        (lambda s: s.__setitem__(slice(30, None), [t + 200 * HOUR for t in s[30:]]), SPARSE),  # a long outage
    ],
)
def test_what_cannot_sit_on_the_usual_clock_is_judged_in_file_order(edit, reason):
    stamps = [START + i * HOUR for i in range(60)]
    edit(stamps)
    clock = _clock(stamps)
    assert (clock.layout, clock.reason, clock.step) == (FILE_ORDER, reason, HOUR)
    assert clock.timestamps == [START + i * HOUR for i in range(60)]


def test_the_grid_is_used_up_to_the_apis_slot_limit_and_no_further():
    rows = 50
    for span, layout in ((MAX_SLOT_FACTOR * rows, OWN_CLOCK), (MAX_SLOT_FACTOR * rows + 1, FILE_ORDER)):
        stamps = [START + i * HOUR for i in range(rows - 1)] + [START + (span - 1) * HOUR]
        clock = _clock(stamps)
        assert clock.layout == layout
        detect_table(clock.timestamps, [1.0] * rows, mode="stream", granularity=clock.granularity)


def test_a_monthly_file_with_a_glitch_is_judged_in_file_order_a_month_apart():
    """Months are not one fixed step: on a 31-day clock two of them would round to one slot."""
    stamps = [datetime(2021 + i // 12, 1 + i % 12, 1, tzinfo=timezone.utc) for i in range(36)]
    stamps[17] += timedelta(days=1)
    clock = _clock(stamps)
    assert (clock.layout, clock.reason, clock.step) == (FILE_ORDER, SHARED_SLOT, timedelta(days=31))


def test_a_given_granularity_is_kept_and_only_a_step_back_is_judged_in_file_order():
    stamps = [START + i * HOUR for i in range(48)]
    stamps[7] += timedelta(minutes=2)
    assert _clock(stamps, "hourly", 1, inferred=False).layout == OWN_CLOCK  # the API refuses it, clearly
    stamps[20] = stamps[10]
    clock = _clock(stamps, "minutely", 30, inferred=False)
    assert (clock.layout, clock.first_odd_row, clock.step) == (FILE_ORDER, 20, timedelta(minutes=30))


def test_rows_that_run_backwards_and_an_overflowing_interval_are_clear_errors():
    stamps = [START - i * HOUR for i in range(30)]
    with pytest.raises(DetectionError, match="backwards"):
        _clock(stamps)
    stamps = [START + i * HOUR for i in range(30)]
    stamps[5] = stamps[4]
    with pytest.raises(DetectionError, match="customInterval"):
        _clock(stamps, "weekly", 10**6, inferred=False)


def _write(path, stamps, values, blank=()):
    rows = "".join(f"{s:%Y-%m-%d %H:%M:%S},{'' if i in blank else format(v, 'g')}\n" for i, (s, v) in enumerate(zip(stamps, values)))
    path.write_text("timestamp,value\n" + rows)
    return path


def _stream(path, *args):
    return subprocess.run([*COMMAND, "detect", str(path), "--mode", "stream", *args], capture_output=True, text=True)


def test_the_cli_judges_a_jittered_file_as_the_detector_judges_its_nearest_slots(tmp_path):
    rng = np.random.default_rng(3)
    n = 2500
    values = rng.poisson(30, n).astype(float)
    values[2000] = 120  # a spike the detector must flag
    slots = np.arange(n) + (np.arange(n) >= 1500) * 24  # a 2-hour outage
    stamps = [START + int(k) * FIVE_MINUTES + timedelta(seconds=int(j)) for k, j in zip(slots, rng.integers(0, 40, n))]
    done = _stream(_write(tmp_path / "sensor.csv", stamps, values))
    assert done.returncode == 0, done.stderr
    assert "nearest slot" in done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["timestamp"] for r in rows] == [f"{s:%Y-%m-%d %H:%M:%S}" for s in stamps]
    grid = np.full(int(slots[-1]) + 1, np.nan)
    grid[slots] = values
    expected = detect(grid, settings=DEFAULT_SETTINGS.for_step(300)).is_anomaly[slots]
    assert [r["is_anomaly"] == "true" for r in rows] == expected.tolist()
    assert expected[2000]


def test_the_cli_note_names_the_files_own_line_and_timestamp(tmp_path):
    stamps = [START + i * HOUR for i in range(100)]
    stamps[60] = stamps[50]
    text = [f"{s:%Y-%m-%dT%H:%M:%S}+02:00" for s in stamps]  # as the file writes them, zone and all
    source = tmp_path / "glitch.csv"
    source.write_text("timestamp,value\n" + "".join(f"{t},{'' if i < 5 else i % 7}\n" for i, t in enumerate(text)))
    done = _stream(source)
    assert done.returncode == 0, done.stderr
    assert f"row 62 ({text[60]}) is not after the row before it" in done.stderr  # line 62: header + 61


def test_the_cli_keeps_a_given_granularity_strict(tmp_path):
    stamps = [START + i * HOUR for i in range(100)]
    stamps[7] += timedelta(minutes=2)
    source = _write(tmp_path / "late.csv", stamps, range(100))
    assert _stream(source).returncode == 0
    done = _stream(source, "--granularity", "Hourly")
    assert done.returncode == 2 and "not on the hourly grid" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_rows_off_clock_timestamp_does_not_set_the_clock(tmp_path):
    stamps = [START + i * FIVE_MINUTES for i in range(300)]
    stamps.insert(100, stamps[99] + timedelta(minutes=2))  # a row without a value, off the clock
    done = _stream(_write(tmp_path / "holed.csv", stamps, [7.0] * 301, blank={100}))
    assert done.returncode == 0, done.stderr
    assert "1 rows have no value" in done.stderr and "note: row" not in done.stderr
