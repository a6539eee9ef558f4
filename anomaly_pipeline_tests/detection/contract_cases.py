"""Requests shared by the API, server, client and CLI tests: reference vectors, a 72-hour series
like the tutorial's, a heavy sparse one, and one invalid request per error row of the contract."""

from __future__ import annotations

import copy
import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def load_vector(name: str) -> dict:
    """``entire`` or ``last``: {"request": ..., "response": ...} as the service documented it."""
    return json.loads((FIXTURES / f"{name}-detect.json").read_text())


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def hourly_values(n: int = 72) -> list[float]:
    """A daily cycle with a little deterministic wiggle (no randomness, no anomaly)."""
    return [
        round(100 + 20 * math.sin(2 * math.pi * i / 24) + 1.5 * math.sin(i * 1.7), 3)
        for i in range(n)
    ]


def hourly_points(n: int = 72) -> list[dict]:
    return [
        {"timestamp": iso(START + timedelta(hours=i)), "value": v}
        for i, v in enumerate(hourly_values(n))
    ]


def hourly_body(n: int = 72, **extra: Any) -> dict:
    """The tutorial's last/detect request shape."""
    return {
        "series": hourly_points(n),
        "maxAnomalyRatio": 0.25,
        "sensitivity": 95,
        "granularity": "hourly",
        **extra,
    }


def sparse_hourly_body(points: int = 1000, slots: int = 17280, seed: int = 2) -> dict:
    """A heavy request the contract allows: ``points`` noisy hourly values spread evenly over
    ``slots`` hours (17,280 = the grid limit), so the engine analyses the whole filled grid."""
    rng = random.Random(seed)
    positions = [i * (slots - 1) // (points - 1) for i in range(points)]
    series = [
        {"timestamp": iso(START + timedelta(hours=p)), "value": round(rng.gauss(100, 10), 3)}
        for p in positions
    ]
    return {"series": series, "granularity": "hourly"}


def _points(mutate: Callable[[list], None], n: int = 72) -> dict:
    body = hourly_body(n)
    mutate(body["series"])
    return body


def _swap(points: list) -> None:
    points[3]["timestamp"], points[4]["timestamp"] = points[4]["timestamp"], points[3]["timestamp"]


def _every_third(points: list) -> None:
    points[:] = points[::3]


def _without(key: str) -> dict:
    body = hourly_body()
    del body[key]
    return body


# (case id, api version, request body, expected code): every error row of the contract.
ERROR_CASES: list[tuple[str, str, Any, str]] = [
    ("fewer-than-12-points", "v1.1", hourly_body(11), "InvalidSeries"),
    ("more-than-8640-points", "v1.1", hourly_body(8641), "InvalidSeries"),
    ("series-not-a-list", "v1.1", {**hourly_body(), "series": {"a": 1}}, "InvalidSeries"),
    ("timestamps-not-ascending", "v1.1", _points(_swap), "InvalidSeries"),
    (
        "duplicated-timestamp",
        "v1.1",
        _points(lambda p: p[5].update(timestamp=p[4]["timestamp"])),
        "InvalidSeries",
    ),
    (
        "off-the-granularity-grid",
        "v1.1",
        _points(lambda p: p[5].update(timestamp=iso(START + timedelta(hours=5, minutes=30)))),
        "InvalidSeries",
    ),
    (
        "seasonal-series-missing-over-half",
        "v1.1",
        {**_points(_every_third, n=150), "period": 24},
        "InvalidSeries",
    ),
    ("missing-value", "v1.1", _points(lambda p: p[3].pop("value")), "BadArgument"),
    ("null-value", "v1.1", _points(lambda p: p[3].update(value=None)), "BadArgument"),
    ("non-numeric-value", "v1.1", _points(lambda p: p[3].update(value="12,5")), "BadArgument"),
    ("boolean-value", "v1.1", _points(lambda p: p[3].update(value=True)), "BadArgument"),
    ("point-not-an-object", "v1.1", _points(lambda p: p.__setitem__(2, 7.5)), "BadArgument"),
    ("malformed-timestamp", "v1.1", _points(lambda p: p[2].update(timestamp="yesterday")), "BadArgument"),
    ("missing-timestamp", "v1.1", _points(lambda p: p[2].pop("timestamp")), "BadArgument"),
    ("max-anomaly-ratio-0.5", "v1.1", hourly_body(maxAnomalyRatio=0.5), "InvalidModelArgument"),
    ("max-anomaly-ratio-0", "v1.1", hourly_body(maxAnomalyRatio=0), "InvalidModelArgument"),
    ("sensitivity-100", "v1.1", hourly_body(sensitivity=100), "InvalidModelArgument"),
    ("sensitivity-negative", "v1.1", hourly_body(sensitivity=-1), "InvalidModelArgument"),
    ("sensitivity-not-integer", "v1.1", hourly_body(sensitivity=95.5), "InvalidModelArgument"),
    ("period-needs-2-periods-plus-1", "v1.1", hourly_body(period=36), "InvalidModelArgument"),
    ("period-negative", "v1.1", hourly_body(period=-3), "InvalidModelArgument"),
    ("unknown-granularity", "v1.1", hourly_body(granularity="fortnightly"), "InvalidGranularity"),
    ("series-missing", "v1.1", _without("series"), "RequiredSeries"),
    ("granularity-missing-v1.0", "v1.0", _without("granularity"), "RequiredGranularity"),
    ("custom-interval-zero", "v1.1", hourly_body(customInterval=0), "InvalidCustomInterval"),
    ("unknown-impute-mode", "v1.1", hourly_body(imputeMode="mean"), "InvalidImputeMode"),
    ("fixed-impute-without-value", "v1.1", hourly_body(imputeMode="fixed"), "InvalidImputeFixedValue"),
    ("body-not-an-object", "v1.1", [1, 2, 3], "InvalidJsonFormat"),
]


def error_case_ids() -> list[str]:
    return [case[0] for case in ERROR_CASES]


def fresh(body: Any) -> Any:
    """A deep copy, so a test cannot change a case for the next one."""
    return copy.deepcopy(body)
