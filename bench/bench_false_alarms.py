"""The false-alarm budget that ``sensitivity`` buys: alarms on series with no anomaly.

Clean hourly counts (Poisson around a daily and weekly profile, three levels), clean hourly
non-negative reals (gamma noise around the same profile), hourly and 5-minute counts with a tenth
of their points missing at random, and the corpora's own anomaly-free
series (NAB ``artificialNoAnomaly``, 5-minute; cloud-monitoring series without a label), judged by
the online detector at several sensitivities. Prints false alarms per 1,000 hours and per week;
the README's mapping comes from here.

    .venv/bin/python bench/bench_false_alarms.py [--weeks 26] [--series 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from cloud_monitoring import load_cloud_corpus  # noqa: E402
from nab import load_corpus  # noqa: E402

from anomaly_pipeline.detection.online import DEFAULT_SETTINGS, detect  # noqa: E402

SENSITIVITIES = (50, 80, 90, 95, 99)
WEEK = 168
GAP_SHARE = 0.1  # the gappy series miss this share of their points
FIVE_MINUTE_WEEKS = 8  # the 5-minute series are shorter (12 times the points an hour)


def _profile(hours: int) -> np.ndarray:
    t = np.arange(hours)
    return (1 + 0.6 * np.sin(2 * np.pi * t / 24)) * (1 - 0.3 * ((t // 24) % 7 >= 5))


def _with_gaps(x: np.ndarray, rng, share: float = GAP_SHARE) -> np.ndarray:
    """``x`` with ``share`` of its points missing (NaN), at random."""
    x = x.copy()
    x[rng.random(x.size) < share] = np.nan
    return x


def synthetic(weeks: int, count: int) -> dict[str, tuple[list[np.ndarray], float]]:
    """Clean series by name, with their step in seconds."""
    rng = np.random.default_rng(0)
    hours = weeks * WEEK
    profile = _profile(hours)
    five_minutes = np.repeat(_profile(FIVE_MINUTE_WEEKS * WEEK), 12)
    hourly = {
        "hourly counts, mean 2": [rng.poisson(2 * profile).astype(float) for _ in range(count)],
        "hourly counts, mean 40": [rng.poisson(40 * profile).astype(float) for _ in range(count)],
        "hourly counts, mean 1000": [rng.poisson(1000 * profile).astype(float) for _ in range(count)],
        "hourly reals (gamma, cv 0.3)": [rng.gamma(11.1, 9 * profile) for _ in range(count)],
        "hourly counts, mean 40, 10% missing": [_with_gaps(rng.poisson(40 * profile).astype(float), rng) for _ in range(count)],
    }
    out = {name: (series, 3600.0) for name, series in hourly.items()}
    out["5-minute counts, mean 5, 10% missing"] = (
        [_with_gaps(rng.poisson(5 * five_minutes).astype(float), rng) for _ in range(count)],
        300.0,
    )
    return out


def _step(timestamps) -> float:
    return float(np.median(np.diff(timestamps).astype("timedelta64[s]").astype(np.int64)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weeks", type=int, default=26)
    ap.add_argument("--series", type=int, default=8)
    args = ap.parse_args(argv)
    sets: list[tuple[str, list[np.ndarray], float]] = [
        (name, series, step) for name, (series, step) in synthetic(args.weeks, args.series).items()
    ]
    clean_nab = [f for f in load_corpus() if f.category == "artificialNoAnomaly"]
    if clean_nab:
        sets.append(("NAB artificialNoAnomaly (5-minute)", [f.values for f in clean_nab], _step(clean_nab[0].timestamps)))
    clean_cloud = [c for c in load_cloud_corpus() if not c.labels.any()]
    if clean_cloud:
        sets.append(("cloud-monitoring, unlabelled series", [c.values for c in clean_cloud], 3600.0))
    print(f"{'series (no anomaly)':<40}{'hours':>8}" + "".join(f"{'s=' + str(s):>10}" for s in SENSITIVITIES))
    print(f"{'':<40}{'':>8}" + "".join(f"{'FA/1kh':>10}" for _ in SENSITIVITIES))
    for name, series, step in sets:
        settings = DEFAULT_SETTINGS.for_step(step)
        hours = sum(x.size for x in series) * step / 3600.0
        cells = []
        for s in SENSITIVITIES:
            alarms = sum(int(detect(x, sensitivity=s, settings=settings).is_anomaly.sum()) for x in series)
            cells.append(f"{1000.0 * alarms / hours:>10.2f}")
        print(f"{name:<40}{hours:>8.0f}" + "".join(cells))
    print("\n(1 false alarm per 1,000 hours is one every 6 weeks of one metric; 6 per 1,000 h is about one a week)")


if __name__ == "__main__":
    main()
