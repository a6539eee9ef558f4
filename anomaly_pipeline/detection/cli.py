"""`anomaly-pipeline detect` and `anomaly-pipeline serve-detector` sub-commands."""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from contextlib import nullcontext
from typing import Any, Callable, Optional, TextIO

from anomaly_pipeline.detection.errors import BAD_ARGUMENT, INVALID_SERIES, DetectionError
from anomaly_pipeline.detection.request import DEFAULT_MAX_ANOMALY_RATIO, MAX_POINTS

# Flags that only some modes use: given with another mode, they are an error, not silently ignored.
MODE_ONLY_FLAGS = {
    "window": ("--window", ("stream",)),
    "max_anomaly_ratio": ("--max-anomaly-ratio", ("entire",)),  # the online detector has its own budget
}

def register(subparsers: argparse._SubParsersAction) -> None:
    detect = subparsers.add_parser(
        "detect",
        help="detect anomalies in a timestamp,value CSV",
        description=(
            "Detect anomalies in INPUT (CSV with timestamp,value columns, e.g. NAB files) and write "
            "timestamp,value,expected_value,upper_margin,lower_margin,is_anomaly,"
            "is_positive_anomaly,is_negative_anomaly,severity. Errors exit with status 2 and "
            "'error <Code>: <message>' on stderr."
        ),
    )
    detect.add_argument("input", metavar="INPUT.csv", help="CSV with timestamp,value columns")
    detect.add_argument(
        "--mode",
        choices=("entire", "last", "stream"),
        default="entire",
        help=f"entire: every point judged with the whole series (a longer one in consecutive "
        f"chunks of at most {MAX_POINTS} points, the API's limit); last: one row, the last point, "
        f"judged from the {MAX_POINTS} points up to it; stream: each point judged only from the "
        "points before it",
    )
    detect.add_argument(
        "--granularity",
        help="yearly, monthly, weekly, daily, hourly, minutely, secondly, microsecond or none; "
        "inferred from the timestamps when left out",
    )
    detect.add_argument("--custom-interval", type=int, help="multiple of the granularity")
    detect.add_argument("--period", type=int, help="seasonal period in points (default: detect)")
    detect.add_argument("--sensitivity", type=int, default=95, help="0..99 (default 95)")
    detect.add_argument(
        "--max-anomaly-ratio", type=float,
        help=f"entire mode: 0 < r < 0.5 (default {DEFAULT_MAX_ANOMALY_RATIO})",
    )  # fmt: skip
    detect.add_argument(
        "--window", type=int, help="stream mode: points of history per decision (default: all before it)"
    )
    detect.add_argument("--output", "-o", metavar="OUT.csv", help="output CSV (default stdout)")
    detect.set_defaults(func=run_detect)

    serve = subparsers.add_parser(
        "serve-detector",
        help="serve the Anomaly Detector REST API",
        description=(
            "Serve /anomalydetector/v1.0|v1.1/timeseries/{entire,last,changepoint}/detect. "
            "Set ANOMALY_DETECTOR_KEY to require that value in the Ocp-Apim-Subscription-Key "
            "header."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (one per core for throughput)"
    )
    serve.set_defaults(func=run_serve)


def _read_table(path: str) -> tuple[list[str], list[Any]]:
    try:
        # utf-8-sig: a file saved by a spreadsheet starts with a byte-order mark
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DetectionError(INVALID_SERIES, f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "timestamp" not in fields or "value" not in fields:
            raise DetectionError(
                BAD_ARGUMENT, f"{path} must have timestamp and value columns, has {fields}."
            )
        reader.fieldnames = fields
        timestamps: list[str] = []
        values: list[Any] = []
        for row in reader:
            timestamps.append((row["timestamp"] or "").strip())
            values.append(_number(row["value"]))
    return timestamps, values


MISSING_MARKERS = {"", "nan", "na", "null", "none"}  # how tools write a missing value (pandas: NaN)


def _number(text: Optional[str]) -> Any:
    """A float, None for a missing value, or the raw text so validation reports it as BadArgument."""
    text = (text or "").strip()
    if text.lower() in MISSING_MARKERS:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _format(value: Any) -> str:
    if value is None:  # no verdict yet (stream mode's first points): an empty cell
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".10g")
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S" if not value.microsecond else "%Y-%m-%d %H:%M:%S.%f")
    return str(value)


def _write_table(columns: dict[str, list], out: TextIO) -> None:
    from anomaly_pipeline.detection.api import TABLE_COLUMNS

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    for row in zip(*(columns[name] for name in TABLE_COLUMNS)):
        writer.writerow([_format(v) for v in row])


def _with_missing_rows(columns: dict[str, list], timestamps: list, present: list[int]) -> dict[str, list]:
    """One output row per input row: rows without a value get an empty verdict (not an anomaly)."""
    if len(present) == len(timestamps):
        return columns
    gap = {"value": None, "expected_value": None, "upper_margin": None, "lower_margin": None,
           "is_anomaly": False, "is_positive_anomaly": False, "is_negative_anomaly": False, "severity": 0.0}  # fmt: skip
    row_of = {i: k for k, i in enumerate(present)}
    out: dict[str, list] = {name: [] for name in columns}
    for i, stamp in enumerate(timestamps):
        k = row_of.get(i)
        for name in columns:
            out[name].append(columns[name][k] if k is not None else (stamp if name == "timestamp" else gap[name]))
    return out


def _check_mode_flags(args: argparse.Namespace) -> None:
    for name, (flag, modes) in MODE_ONLY_FLAGS.items():
        if getattr(args, name) is not None and args.mode not in modes:
            raise DetectionError(
                BAD_ARGUMENT, f"{flag} applies to --mode {' or '.join(modes)} only, not --mode {args.mode}."
            )


def _chunks(n: int, size: int) -> list[slice]:
    """`n` points in the fewest consecutive chunks of at most `size`, as equal as possible (so no
    chunk is too short to judge)."""
    count = -(-n // size)
    bounds = [round(i * n / count) for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def _stream(
    timestamps: list, values: list, *, clock_inferred: bool, row_text: Callable[[int], str], **options: Any
) -> dict[str, list]:
    """Stream mode on the clock :func:`~anomaly_pipeline.detection.clock.stream_clock` lays the
    rows out on. Where it differs from the rows' own, a note names the first odd row
    (``row_text(i)``: how the file shows row ``i`` of those given); the output keeps the file's
    own timestamps."""
    from anomaly_pipeline.detection.api import detect_table
    from anomaly_pipeline.detection.clock import FILE_ORDER, describe_step, stream_clock
    from anomaly_pipeline.detection.request import FIXED_STEPS, parse_timestamp

    if options["granularity"] not in FIXED_STEPS:
        return detect_table(timestamps, values, mode="stream", **options)
    stamps = [parse_timestamp(t) for t in timestamps]
    clock = stream_clock(stamps, options["granularity"], options.get("custom_interval", 1), inferred=clock_inferred)
    if clock.first_odd_row is None:
        return detect_table(timestamps, values, mode="stream", **options)
    options = {**options, "granularity": clock.granularity, "custom_interval": clock.custom_interval}
    columns = detect_table(clock.timestamps, values, mode="stream", **options)
    every = f"one row every {describe_step(clock.step)}"
    how = f"the rows were judged in file order, {every}" if clock.layout == FILE_ORDER else (
        "each row off it was judged at its nearest slot")  # fmt: skip
    print(f"note: {row_text(clock.first_odd_row)} {clock.reason.format(clock=every)}: {how}.", file=sys.stderr)
    return {**columns, "timestamp": stamps}


def _detect(timestamps: list, values: list, mode: str, stream_options: dict, **options: Any) -> dict[str, list]:
    """`detect_table`, within the API's limit: entire mode judges a longer series chunk by chunk
    (each chunk on its own), last mode judges the last point from the latest `MAX_POINTS`."""
    from anomaly_pipeline.detection.api import detect_table

    n = len(values)
    if mode == "stream":
        return _stream(timestamps, values, **stream_options, **options)
    if n <= MAX_POINTS:
        return detect_table(timestamps, values, mode=mode, **options)
    if mode == "last":
        print(f"note: last mode judged the last point from the latest {MAX_POINTS} of {n} points "
              "(the API's limit).", file=sys.stderr)  # fmt: skip
        return detect_table(timestamps[-MAX_POINTS:], values[-MAX_POINTS:], mode=mode, **options)
    chunks = _chunks(n, MAX_POINTS)
    print(f"note: {n} points are more than the API's {MAX_POINTS}: entire mode judged them in "
          f"{len(chunks)} consecutive chunks, each on its own (--mode stream judges the whole "
          "series point by point).", file=sys.stderr)  # fmt: skip
    parts = [detect_table(timestamps[chunk], values[chunk], mode=mode, **options) for chunk in chunks]
    return {name: [item for part in parts for item in part[name]] for name in parts[0]}


def run_detect(args: argparse.Namespace) -> int:
    from anomaly_pipeline.detection.request import infer_granularity, parse_granularity, parse_timestamp

    try:
        _check_mode_flags(args)
        timestamps, values = _read_table(args.input)
        present = [i for i, value in enumerate(values) if value is not None]
        raw, granularity, interval = timestamps, args.granularity, args.custom_interval
        if granularity is None:
            if len(present) < 2:
                raise DetectionError(INVALID_SERIES, "too few rows with a value to infer a granularity.")
            timestamps = [parse_timestamp(t) for t in timestamps]
            # the rows with a value are the series; a row without one does not set its clock
            granularity, inferred_interval = infer_granularity([timestamps[i] for i in present])
            interval = inferred_interval if interval is None else interval
        else:
            granularity = parse_granularity(granularity, required=True)
        if len(present) < len(values):
            print(f"note: {len(values) - len(present)} rows have no value: they are missing observations "
                  "(left out of the series, no verdict).", file=sys.stderr)  # fmt: skip
        columns = _detect(
            [timestamps[i] for i in present],
            [values[i] for i in present],
            args.mode,
            stream_options={
                "clock_inferred": args.granularity is None,
                # a CSV's line number (the header is line 1) and the timestamp as the file writes it
                "row_text": lambda i: f"row {present[i] + 2} ({raw[present[i]]})",
            },
            granularity=granularity,
            custom_interval=1 if interval is None else interval,
            period=args.period,
            sensitivity=args.sensitivity,
            max_anomaly_ratio=DEFAULT_MAX_ANOMALY_RATIO if args.max_anomaly_ratio is None else args.max_anomaly_ratio,
            window=args.window,
        )
        if args.mode != "last":
            columns = _with_missing_rows(columns, timestamps, present)
        buffer = io.StringIO()
        _write_table(columns, buffer)
        target = open(args.output, "w", newline="", encoding="utf-8") if args.output else nullcontext(sys.stdout)
        with target as out:
            out.write(buffer.getvalue())
    except DetectionError as exc:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error IOError: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from anomaly_pipeline.detection.server import serve

    if args.workers < 1:
        print("error BadArgument: --workers must be >= 1", file=sys.stderr)
        return 2
    key_set = bool(os.environ.get("ANOMALY_DETECTOR_KEY"))
    print(
        f"serving the Anomaly Detector API on http://{args.host}:{args.port} "
        f"({'key required' if key_set else 'no key required: ANOMALY_DETECTOR_KEY is not set'})",
        file=sys.stderr,
    )
    serve(host=args.host, port=args.port, workers=args.workers)
    return 0
