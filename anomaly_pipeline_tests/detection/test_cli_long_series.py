"""`anomaly-pipeline detect` on a whole NAB-sized file in every mode, and flags that do not apply
to the chosen mode are refused (they were silently ignored)."""

from __future__ import annotations

import csv
import math
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from anomaly_pipeline.detection.api import detect_table
from anomaly_pipeline.detection.cli import _chunks
from anomaly_pipeline.detection.request import MAX_POINTS
from anomaly_pipeline_tests.detection.test_cli import COMMAND

N = 15902  # Twitter_volume_AAPL.csv, 5-minute points
START = datetime(2015, 2, 26, 21, 40)
SPIKES = (3000, 12000)  # one in each half


def _stamp(i: int) -> str:
    return (START + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")


def _values(n: int = N) -> list[float]:
    values = [round(50 + 15 * math.sin(2 * math.pi * i / 288) + 2 * math.sin(i * 1.3), 3) for i in range(n)]
    for i in SPIKES:
        if i < n:
            values[i] += 200
    return values


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "long.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        writer.writerows((_stamp(i), v) for i, v in enumerate(_values()))
    return path


def _detect(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, "detect", *map(str, args)], capture_output=True, text=True, timeout=120)


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(text.splitlines()))


def test_entire_mode_judges_a_long_series_in_api_sized_chunks(long_csv):
    done = _detect(long_csv)
    assert done.returncode == 0, done.stderr
    assert f"{N} points are more than the API's {MAX_POINTS}" in done.stderr and "2 consecutive chunks" in done.stderr
    rows = _rows(done.stdout)
    assert len(rows) == N and rows[-1]["timestamp"] == _stamp(N - 1)
    flagged = {i for i, row in enumerate(rows) if row["is_anomaly"] == "true"}
    assert set(SPIKES) <= flagged
    # each chunk is judged exactly as a request of that chunk alone would be
    second = _chunks(N, MAX_POINTS)[1]
    alone = detect_table([_stamp(i) for i in range(N)][second], _values()[second], granularity="minutely", custom_interval=5)
    assert [row["expected_value"] for row in rows[second]] == [format(v, ".10g") for v in alone["expected_value"]]


def test_last_mode_judges_the_last_point_of_a_long_series(long_csv):
    done = _detect(long_csv, "--mode", "last")
    assert done.returncode == 0, done.stderr
    (row,) = _rows(done.stdout)
    assert row["timestamp"] == _stamp(N - 1)
    assert f"latest {MAX_POINTS} of {N} points" in done.stderr


@pytest.mark.parametrize("n", [MAX_POINTS + 1, 15902, 3 * MAX_POINTS, 3 * MAX_POINTS + 5])
def test_chunks_cover_the_series_and_none_is_too_short(n):
    chunks = _chunks(n, MAX_POINTS)
    assert chunks[0].start == 0 and chunks[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
    assert all(MAX_POINTS // 2 <= c.stop - c.start <= MAX_POINTS for c in chunks)


@pytest.mark.parametrize(
    "mode, flag",
    [("entire", ["--window", "600"]), ("last", ["--window", "600"]),
     ("stream", ["--max-anomaly-ratio", "0.1"]), ("last", ["--max-anomaly-ratio", "0.1"])],
)  # fmt: skip
def test_a_flag_the_mode_does_not_use_is_an_error(tmp_path, mode, flag):
    path = tmp_path / "short.csv"
    path.write_text("timestamp,value\n" + "".join(f"{_stamp(i)},{v}\n" for i, v in enumerate(_values(300))))
    done = _detect(path, "--mode", mode, *flag)
    assert done.returncode == 2 and done.stdout == ""
    assert f"error BadArgument: {flag[0]} applies to --mode" in done.stderr and f"not --mode {mode}" in done.stderr
