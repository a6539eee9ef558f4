"""`anomaly-pipeline detect` in a subprocess, on small NAB-style CSVs made in tmp_path."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from anomaly_pipeline.detection.api import TABLE_COLUMNS
from anomaly_pipeline_tests.detection.contract_cases import hourly_values

SCRIPT = Path(sys.executable).parent / "anomaly-pipeline"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "anomaly_pipeline.cli"]
START = datetime(2015, 2, 26, 21, 42)
HOURS_20 = [(f"2015-01-01 {h:02d}:00:00", h % 5) for h in range(20)]


def _csv(path: Path, rows) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        writer.writerows(rows)
    return path


def _series(path: Path, n=96, step=timedelta(minutes=5), spike_at=None, skip=()) -> Path:
    values = hourly_values(n)
    if spike_at is not None:
        values[spike_at] += 80
    rows = [
        ((START + i * step).strftime("%Y-%m-%d %H:%M:%S"), v)
        for i, v in enumerate(values)
        if i not in skip
    ]
    return _csv(path, rows)


def _run(*args):
    return subprocess.run(
        [*COMMAND, "detect", *map(str, args)], capture_output=True, text=True, timeout=60
    )


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(text.splitlines()))


def test_entire_mode_infers_five_minute_data_and_flags_the_spike(tmp_path):
    source = _series(tmp_path / "in.csv", spike_at=60, skip=(20,))
    out = tmp_path / "out.csv"
    done = _run(source, "--output", out)
    assert done.returncode == 0, done.stderr
    rows = _rows(out.read_text())
    assert list(rows[0]) == list(TABLE_COLUMNS)
    assert len(rows) == 95  # one row per input row; the missing slot is imputed, not printed
    assert rows[0]["timestamp"] == "2015-02-26 21:42:00"
    flagged = [i for i, row in enumerate(rows) if row["is_anomaly"] == "true"]
    assert flagged == [59]  # input row 59 is series point 60 (point 20 is missing)
    assert rows[59]["is_positive_anomaly"] == "true" and float(rows[59]["severity"]) > 0
    assert float(rows[0]["upper_margin"]) > 0


def test_last_mode_writes_one_row_to_stdout(tmp_path):
    hourly = _series(tmp_path / "in.csv", step=timedelta(hours=1), spike_at=95)  # a daily cycle
    done = _run(hourly, "--mode", "last")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert len(rows) == 1
    assert rows[0]["is_anomaly"] == "true" and rows[0]["timestamp"] == "2015-03-02 20:42:00"


def test_stream_mode_judges_from_the_past_only(tmp_path):
    source = _series(tmp_path / "in.csv", n=120, step=timedelta(hours=1), spike_at=100)
    done = _run(source, "--mode", "stream", "--window", 60)
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert len(rows) == 120
    assert rows[0]["is_anomaly"] == "false" and float(rows[0]["severity"]) == 0
    assert rows[100]["is_anomaly"] == "true"
    # changing the future does not change an earlier verdict
    later = _series(tmp_path / "later.csv", n=120, step=timedelta(hours=1), spike_at=110)
    rows_later = _rows(_run(later, "--mode", "stream", "--window", 60).stdout)
    assert rows_later[:100] == [dict(r) for r in rows[:100]]


def test_stream_mode_is_not_bound_by_8640_points(tmp_path):
    source = _series(tmp_path / "in.csv", n=8700, step=timedelta(hours=1))
    assert _run(source, "--mode", "stream").returncode == 0
    done = _run(source)  # entire mode: in API-sized chunks (see test_cli_long_series.py)
    assert done.returncode == 0 and "2 consecutive chunks" in done.stderr


def test_stream_mode_judges_a_file_whose_clock_steps_back_in_file_order(tmp_path):
    """Recorded data has such glitches (NAB's machine_temperature file logs an hour twice)."""
    clean = _series(tmp_path / "clean.csv", n=400, step=timedelta(hours=1), spike_at=300)
    rows = list(csv.reader(clean.open()))
    rows[201][0] = rows[191][0]  # row 200's timestamp goes back ten hours
    glitched = _csv(tmp_path / "glitched.csv", rows[1:])
    done = _run(glitched, "--mode", "stream")
    assert done.returncode == 0, done.stderr
    assert "row 202" in done.stderr and "file order" in done.stderr
    judged = _rows(done.stdout)
    assert [r["timestamp"] for r in judged] == [r[0] for r in rows[1:]]  # the file's own timestamps
    expected = _rows(_run(clean, "--mode", "stream").stdout)
    assert [r["is_anomaly"] for r in judged] == [r["is_anomaly"] for r in expected]
    assert judged[300]["is_anomaly"] == "true"
    refused = _run(glitched)  # entire mode keeps the API's rule
    assert refused.returncode == 2 and "ascending" in refused.stderr


@pytest.mark.parametrize("marker", ["", "NaN", "null"])
def test_rows_without_a_value_are_missing_observations(tmp_path, marker):
    """Telemetry files mark a missing observation with an empty value (cloud-monitoring does), or
    as pandas writes it (NaN), or null."""
    clean = _series(tmp_path / "clean.csv", n=300, step=timedelta(hours=1), spike_at=250)
    rows = list(csv.reader(clean.open()))[1:]
    for i in (40, 41, 180):
        rows[i][1] = marker
    holed = _csv(tmp_path / "holed.csv", rows)
    without = _csv(tmp_path / "without.csv", [r for i, r in enumerate(rows) if i not in (40, 41, 180)])
    for mode in ("stream", "entire"):
        done = _run(holed, "--mode", mode)
        assert done.returncode == 0, done.stderr
        assert "3 rows have no value" in done.stderr
        judged = _rows(done.stdout)
        assert [r["timestamp"] for r in judged] == [r[0] for r in rows]  # one row per input row
        assert all(judged[i]["value"] == "" and judged[i]["is_anomaly"] == "false" for i in (40, 41, 180))
        kept = [r for i, r in enumerate(judged) if i not in (40, 41, 180)]
        assert kept == _rows(_run(without, "--mode", mode).stdout)  # the same as leaving the rows out
    assert _rows(_run(holed, "--mode", "stream").stdout)[250]["is_anomaly"] == "true"


def test_explicit_granularity_and_interval(tmp_path):
    source = _series(tmp_path / "in.csv")
    done = _run(source, "--granularity", "minutely", "--custom-interval", 5, "--period", 24)
    assert done.returncode == 0, done.stderr
    assert len(_rows(done.stdout)) == 96


ERROR_ROWS = {
    "too-few": ([("2015-01-01 00:00:00", 1.0)] * 5, [], "InvalidSeries"),
    "not-ascending": (
        [(f"2015-01-01 {h:02d}:00:00", 1.0 + h % 3) for h in [1, 0, *range(2, 20)]],
        ["--granularity", "hourly"],
        "InvalidSeries",
    ),
    "off-grid": (
        [(f"2015-01-01 {h:02d}:{7 if h == 3 else 0:02d}:00", h % 5) for h in range(20)],
        ["--granularity", "hourly"],
        "InvalidSeries",
    ),
    "non-numeric": (
        [(f"2015-01-01 {h:02d}:00:00", "n/a" if h == 4 else h % 5) for h in range(20)],
        [],
        "BadArgument",
    ),
    "bad-timestamp": ([("yesterday", 1.0)] * 20, [], "BadArgument"),
    "sensitivity": (HOURS_20, ["--sensitivity", 120], "InvalidModelArgument"),
    "max-anomaly-ratio": (HOURS_20, ["--max-anomaly-ratio", 0.6], "InvalidModelArgument"),
    "period": (HOURS_20, ["--period", 12], "InvalidModelArgument"),
    "granularity": (HOURS_20, ["--granularity", "hour"], "InvalidGranularity"),
    "custom-interval": (HOURS_20, ["--granularity", "hourly", "--custom-interval", 0],
                        "InvalidCustomInterval"),
}


def test_error_rows_exit_non_zero_with_the_code(tmp_path):
    """Every case in its own process, all started at once to keep the test fast."""
    running = {}
    for name, (rows, args, _code) in ERROR_ROWS.items():
        path = _csv(tmp_path / f"{name}.csv", rows)
        running[name] = subprocess.Popen(
            [*COMMAND, "detect", str(path), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, process in running.items():
        out, err = process.communicate(timeout=60)
        code = ERROR_ROWS[name][2]
        assert process.returncode != 0, name
        assert f"error {code}:" in err, (name, err)
        assert "Traceback" not in err and out == "", name


def test_missing_file_and_columns(tmp_path):
    done = _run(tmp_path / "nope.csv")
    assert done.returncode != 0 and "Traceback" not in done.stderr and "error" in done.stderr
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("time,count\n2015-01-01 00:00:00,1\n")
    done = _run(wrong)
    assert done.returncode != 0 and "BadArgument" in done.stderr


def test_a_spreadsheet_export_with_a_byte_order_mark_and_capitalised_header_is_read(tmp_path):
    plain = _series(tmp_path / "plain.csv", n=120, step=timedelta(hours=1), spike_at=100)
    exported = tmp_path / "exported.csv"
    text = plain.read_text().replace("timestamp,value", "Timestamp,Value", 1)
    exported.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    expected, done = _run(plain, "--mode", "stream"), _run(exported, "--mode", "stream")
    assert expected.returncode == 0 and done.returncode == 0, done.stderr
    assert done.stdout == expected.stdout
    assert _rows(done.stdout)[100]["is_anomaly"] == "true"
