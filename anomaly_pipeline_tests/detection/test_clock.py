"""The clock stream mode lays a file's rows on: their own where they keep one, file order where not."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import datetime, timedelta, timezone

import numpy as np

from anomaly_pipeline.detection.clock import stream_clock
from anomaly_pipeline.detection.online import DEFAULT_SETTINGS, detect
from anomaly_pipeline.detection.request import infer_granularity
from anomaly_pipeline_tests.detection.test_cli import COMMAND

START = datetime(2015, 9, 1, 11, 25, tzinfo=timezone.utc)
FIVE_MINUTES = timedelta(minutes=5)


def _clock(stamps, granularity=None, interval=None, inferred=True):
    if granularity is None:
        granularity, interval = infer_granularity(stamps)
    return stream_clock(stamps, granularity, interval, inferred=inferred)


def test_rows_on_one_clock_keep_their_timestamps_and_skipped_slots_stay_gaps():
    stamps = [START + i * timedelta(hours=1) for i in range(100) if i not in (40, 41, 70)]
    clock = _clock(stamps)
    assert clock.note is None and clock.timestamps == stamps
    assert (clock.granularity, clock.custom_interval) == ("hourly", 1)


def test_jittered_rows_are_judged_in_file_order_at_their_usual_step():
    # a traffic sensor: every 5 minutes, but now and then a row 1 or 2 minutes late
    stamps, t = [], START
    for i in range(300):
        stamps.append(t)
        t += FIVE_MINUTES + (timedelta(minutes=1) if i % 37 == 36 else timedelta(0))
    assert infer_granularity(stamps) == ("minutely", 1)  # only a 1-minute grid holds them
    clock = _clock(stamps)
    assert clock.step == FIVE_MINUTES
    assert clock.timestamps == [START + i * FIVE_MINUTES for i in range(300)]
    assert clock.note.startswith("row 39 ") and "usual clock" in clock.note


def test_gaps_that_would_leave_most_of_the_grid_empty_are_closed_up():
    stamps = [START + i * FIVE_MINUTES for i in range(50)]
    stamps += [stamps[-1] + timedelta(days=2) + i * FIVE_MINUTES for i in range(50)]
    clock = _clock(stamps)
    assert clock.note is not None and clock.timestamps == [START + i * FIVE_MINUTES for i in range(100)]


def test_a_given_granularity_is_kept_and_only_a_step_back_is_judged_in_file_order():
    stamps = [START + i * timedelta(hours=1) for i in range(48)]
    assert _clock(stamps, "minutely", 30, inferred=False).note is None
    stamps[20] = stamps[10]  # the clock steps back ten hours
    clock = _clock(stamps, "hourly", 1, inferred=False)
    assert clock.note.startswith("row 22 ") and clock.step == timedelta(hours=1)


def test_the_cli_judges_a_jittered_file_as_the_detector_judges_its_rows(tmp_path):
    rng = np.random.default_rng(3)
    n = 2500
    values = rng.poisson(30, n).astype(float)
    values[2000] = 120  # a spike the detector must flag
    stamps, t = [], START
    for i in range(n):
        stamps.append(t)
        t += FIVE_MINUTES + timedelta(minutes=int(rng.integers(1, 3))) * (i % 50 == 49)
    source = tmp_path / "sensor.csv"
    source.write_text("timestamp,value\n" + "".join(f"{s:%Y-%m-%d %H:%M:%S},{v:g}\n" for s, v in zip(stamps, values)))
    done = subprocess.run([*COMMAND, "detect", str(source), "--mode", "stream"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "file order" in done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["timestamp"] for r in rows] == [f"{s:%Y-%m-%d %H:%M:%S}" for s in stamps]
    expected = detect(values, settings=DEFAULT_SETTINGS.for_step(300)).is_anomaly
    assert [r["is_anomaly"] == "true" for r in rows] == expected.tolist()
    assert expected[2000]
