"""Quality benchmark, out of sample: the online detector and the baselines on every corpus.

Corpora: ``../shared/nab`` (all 53 files; realTweets at 5 minutes; the hourly tweet-volume track:
each realTweets file summed per clock hour) and ``../shared/cloud-monitoring`` (23 hourly series of
real service telemetry, event-level scoring, see ``cloud_monitoring.py``). The detector judges
each file laid out as ``detect --mode stream`` lays it out (``detection/clock.py``), so its
figures are the CLI's.

The detector's settings that are chosen on data (a small grid, ``grid``) are chosen by
leave-one-file-out cross-validation: for each file, a grid point chosen by the mean score over the
corpora on the *other* files judges it (a realTweets file and its hourly version are one file).
The choice is the default unless another point beats it there by more than one standard error
(a bootstrap over the training files): near its top the objective is flat, and a plain argmax
follows the luck of which files a fold holds; the table shows that plain-argmax figure too.
The table shows the out-of-fold figure next to the in-sample one (the point chosen the same way
on all files, which is what ships as the default), and the baselines on the same files. Baselines
have no setting chosen on data, so their in-sample and out-of-fold figures are the same. Last, the
shipped settings at other sensitivities: the one trade a user makes (fewer false alarms against
fewer windows), not a setting chosen here; and the sensitivity a deployment judging tweet volume
alone would choose, by leave-one-tweet-file-out over those sensitivities, with its out-of-fold
figures.

    .venv/bin/python bench/bench_quality.py [--workers 2] [--grid default|full] [--sensitivities 80,85,90,95,99]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from baselines import BASELINES  # noqa: E402
from cloud_monitoring import load_cloud_corpus, score_series, summarise  # noqa: E402
from nab import default_nab_dir, hourly_tweet_volume, load_corpus, normalised, score_file  # noqa: E402

from anomaly_pipeline.detection.clock import stream_clock  # noqa: E402
from anomaly_pipeline.detection.online import DEFAULT_SETTINGS, detect, false_alarm_rate  # noqa: E402
from anomaly_pipeline.detection.request import DEFAULT_SENSITIVITY, infer_granularity, parse_timestamp  # noqa: E402

CORPORA = ("NAB all 53", "realTweets 5-min", "hourly tweet volume", "cloud-monitoring")
SLOW_BASELINES = {"last-point 72"}  # run on the hourly corpora only (one engine call per row)


def grid(kind: str) -> dict[str, dict]:
    """Named settings overrides; ``default`` is the shipped configuration alone. ``full``: the
    product of the event rule's two spans and the false-alarm budget, plus, one at a time around
    the default, the tail cap, the early threshold and the error floor off or moved, the power
    scale of non-negative series (1: off) and its correlation, the level's span, and the daily
    pattern's days and hours, and the span of the sustained-shift test (0: off)."""
    if kind == "default":
        return {"default": {}}
    axes = {
        "false_alarm_rate_95": (1e-3, 3e-3),
        "quiet_hours": (3.0, 6.0, 12.0),
        "regrowth": (2.0, 3.0, 5.0),
    }
    names = list(axes)
    points = [dict(zip(names, combo)) for combo in itertools.product(*(axes[k] for k in names))]
    points += [{"tail_cap": c} for c in (3.0, math.inf)] + [{"mean_error_share": m} for m in (0.0, 0.3)]
    points += [{"early_tail": e} for e in (1.0, 2.0)]
    points += [{"growth_power": g} for g in (0.5, 1.0)] + [{"growth_correlation": 0.3}]
    points += [{"level_hours": h} for h in (12.0, 24.0)]
    points += [{"shift_hours": h} for h in (0.0, 1.0, 3.0)]
    points += [{"precedent_days": d} for d in (1, 3)] + [{"precedent_hours": h} for h in (2.0, 4.0)]
    return {",".join(f"{k}={v}" for k, v in p.items()): p for p in points}


@dataclass
class Series:
    name: str
    group: str  # files that share a source are held out together
    corpora: tuple[str, ...]
    values: np.ndarray
    step_seconds: int
    nab_windows: list | None = None
    cloud: object | None = None
    timestamps: np.ndarray | None = None  # datetime64; None: the rows are evenly spaced
    clock: tuple | None = None  # ``_on_clock``'s layout, computed once at load (every grid point uses it)


def _step(timestamps) -> int:
    steps, counts = np.unique(np.diff(timestamps).astype("timedelta64[s]").astype(np.int64), return_counts=True)
    return int(steps[np.argmax(counts)])


def load_series(nab_dir, cloud_dir) -> list[Series]:
    out = []
    files = load_corpus(nab_dir)
    for f in files:
        corpora = ("NAB all 53", "realTweets 5-min") if f.category == "realTweets" else ("NAB all 53",)
        out.append(Series(f.name, f.name, corpora, f.values, _step(f.timestamps), nab_windows=f.windows,
                          timestamps=f.timestamps))
    for h in hourly_tweet_volume(files):
        group = "realTweets/" + h.name.split("/", 1)[1]
        out.append(Series(h.name, group, ("hourly tweet volume",), h.values, 3600, nab_windows=h.windows))
    for c in load_cloud_corpus(cloud_dir):
        out.append(Series(c.name, c.name, ("cloud-monitoring",), c.values, _step(c.timestamps), cloud=c,
                          timestamps=c.timestamps))
    for series in out:
        series.clock = _on_clock(series)
    return out


def _score(series: Series, alarms: np.ndarray):
    if series.cloud is not None:
        return score_series(alarms, series.cloud)
    return score_file(alarms, series.nab_windows, series.values.size, "standard")


def _on_clock(series: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A series laid out as ``detect --mode stream`` lays its file out (``stream_clock`` on the
    rows with a value, the granularity inferred from them): its values on the clock judged (NaN
    where the file skips a slot), the rows with a value and each one's slot there, and the
    clock's step in seconds."""
    present = np.flatnonzero(np.isfinite(series.values))
    rows_as_they_come = series.values, present, present, float(series.step_seconds)
    if series.timestamps is None:
        return rows_as_they_come
    stamps = [parse_timestamp(t.item()) for t in series.timestamps[present].astype("datetime64[us]")]
    clock = stream_clock(stamps, *infer_granularity(stamps), inferred=True)
    if clock.step is None:  # a calendar clock (monthly, yearly): no corpus has one
        return rows_as_they_come
    step = clock.step.total_seconds()
    slots = np.array([(t - clock.timestamps[0]).total_seconds() // step for t in clock.timestamps], dtype=np.int64)
    grid = np.full(int(slots[-1]) + 1, np.nan)
    grid[slots] = series.values[present]
    return grid, present, slots, step


def _run_detector(args):
    series, overrides, sensitivity = args
    values, present, slots, step = series.clock or _on_clock(series)
    settings = replace(DEFAULT_SETTINGS, **overrides).for_step(step)
    alarms = np.zeros(series.values.size, dtype=bool)  # a row without a value never alarms
    alarms[present] = detect(values, sensitivity=sensitivity, settings=settings).is_anomaly[slots]
    return _score(series, alarms)


def _run_baseline(args):
    series, name = args
    rows_per_hour = max(1, round(3600 / series.step_seconds))
    return _score(series, BASELINES[name](series.values, rows_per_hour))


def corpus_figures(scores: dict, series: list[Series], corpus: str) -> dict:
    members = [s for s in series if corpus in s.corpora]
    if not members or any(s.name not in scores for s in members):
        return {}  # a detector run on part of a corpus only (the slow last-point baseline) gets no figure
    return _figures(scores, members, corpus)


def _figures(scores: dict, members: list[Series], corpus: str) -> dict:
    """A corpus' figures over ``members`` (a file may appear more than once: a bootstrap sample)."""
    if corpus == "cloud-monitoring":
        summary = summarise([scores[s.name] for s in members])
        return {
            "score": summary.nab_like,
            "f1": summary.f1,
            "fa_per_1000": summary.false_alarms_per_1000,
            "hits": f"{summary.detected}/{summary.events}",
            "fa": summary.false_alarms,
            "delay": summary.median_delay,
        }
    file_scores = [scores[s.name] for s in members]
    rows = sum(s.values.size for s in members)
    hours = sum(s.values.size * s.step_seconds for s in members) / 3600.0
    fa = sum(f.fp for f in file_scores)
    return {
        "score": normalised(file_scores),
        "hits": f"{sum(f.tp for f in file_scores)}/{sum(f.tp + f.fn for f in file_scores)}",
        "fa": fa,
        "fa_per_1000": 1000.0 * fa / hours if hours else float("nan"),
        "rows": rows,
    }


def objective(scores: dict, series: list[Series], corpora: tuple[str, ...] = CORPORA) -> float:
    """What a grid point is chosen by: the mean over the corpora (cloud: NAB-like and 100 x F1)."""
    parts = []
    for corpus in corpora:
        fig = corpus_figures(scores, series, corpus)
        if fig:
            parts.append(fig["score"])
            if "f1" in fig:
                parts.append(100.0 * fig["f1"])
    return float(np.mean(parts))


STANDARD_ERRORS = 1.0  # a fold moves off the default only when another point wins by this many
SELECTION_SAMPLES = 200  # bootstrap draws for that standard error


def default_point(points: dict[str, dict]) -> str:
    """The grid point that is the shipped configuration (every override equals the default)."""
    return next(n for n, o in points.items() if all(getattr(DEFAULT_SETTINGS, k) == v for k, v in o.items()))


def choose(per_point: dict[str, dict], train: list[Series], default: str, rng, standard_errors: float,
           corpora: tuple[str, ...] = CORPORA) -> str:
    """The grid point chosen on ``train``: the best by ``objective``, but the default unless the
    best beats it by more than ``standard_errors`` standard errors of the gain (the training
    groups drawn again with replacement). Near its top the objective is flat, and the plain
    argmax follows the luck of which files a fold holds (the one-standard-error rule)."""
    scores = {p: objective(per_point[p], train, corpora) for p in per_point}
    best = max(scores, key=scores.get)
    if best == default or standard_errors <= 0:
        return best
    gain = scores[best] - scores[default]
    error = _gain_error(per_point[best], per_point[default], train, rng, corpora)
    return best if gain > standard_errors * error else default


def _gain_error(ours: dict, theirs: dict, train: list[Series], rng, corpora: tuple[str, ...] = CORPORA) -> float:
    groups: dict[str, list[Series]] = {}
    for s in train:
        groups.setdefault(s.group, []).append(s)
    members = list(groups.values())
    gains = []
    for _ in range(SELECTION_SAMPLES):
        sample = [s for i in rng.integers(0, len(members), len(members)) for s in members[i]]
        gains.append(objective(ours, sample, corpora) - objective(theirs, sample, corpora))
    return float(np.std(gains))


def cross_validate(per_point: dict[str, dict], series: list[Series], default: str,
                   standard_errors: float = STANDARD_ERRORS, corpora: tuple[str, ...] = CORPORA):
    """Leave-one-group-out: each group judged by the grid point chosen (``choose``) on the others."""
    rng = np.random.default_rng(0)
    groups = sorted({s.group for s in series})
    oof, choices = {}, {}
    for g in groups:
        train = [s for s in series if s.group != g]
        best = choose(per_point, train, default, rng, standard_errors, corpora)
        choices[g] = best
        for s in series:
            if s.group == g:
                oof[s.name] = per_point[best][s.name]
    chosen = choose(per_point, series, default, rng, standard_errors, corpora)
    return oof, per_point[chosen], chosen, choices


BOOTSTRAP_SAMPLES = 1000
INTERVAL = (5.0, 95.0)  # a 90% interval


def paired_interval(ours: dict, theirs: dict, series: list[Series], corpus: str, key: str, seed: int = 0):
    """Our figure minus theirs on one corpus, and its 90% interval when the corpus' files are drawn
    again with replacement (both detectors judged on the same draw): how much of a gap is the luck
    of which files a corpus holds. None where either has no figure."""
    our_figures, their_figures = corpus_figures(ours, series, corpus), corpus_figures(theirs, series, corpus)
    if not our_figures or not their_figures:
        return None
    gap = our_figures[key] - their_figures[key]
    members = [s for s in series if corpus in s.corpora]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP_SAMPLES):
        sample = [members[i] for i in rng.integers(0, len(members), len(members))]
        a, b = _figures(ours, sample, corpus)[key], _figures(theirs, sample, corpus)[key]
        if np.isfinite(a) and np.isfinite(b):
            draws.append(a - b)
    low, high = np.percentile(draws, INTERVAL)
    return gap, low, high


def report_gaps(oof: dict, baselines: dict[str, dict], series, out=sys.stdout):
    """Per corpus, the out-of-fold detector minus each baseline, with its 90% file-bootstrap interval."""
    print("\nout of fold minus each baseline (90% interval, files drawn again with replacement):", file=out)
    columns = [(c, "score") for c in CORPORA] + [("cloud-monitoring", "f1")]
    print(f"{'baseline':<34}" + "".join(f"{(c + (' F1' if k == 'f1' else '')):>30}" for c, k in columns), file=out)
    for name, scores in baselines.items():
        cells = []
        for corpus, key in columns:
            gap = paired_interval(oof, scores, series, corpus, key)
            cells.append(f"{_fmt_gap(gap, 2 if key == 'f1' else 1):>30}")
        print(f"{name:<34}" + "".join(cells), file=out)


def _fmt_gap(gap, digits: int) -> str:
    if gap is None:
        return "-"
    value, low, high = (f"{g:+.{digits}f}" for g in gap)
    return f"{value} [{low}, {high}]"


def _fmt(fig: dict) -> str:
    if not fig:
        return f"{'-':>7} {'':>14}"
    extra = f" F1 {fig['f1']:.3f}" if "f1" in fig else ""
    return f"{fig['score']:>7.1f} {fig['hits']:>7} {fig['fa_per_1000']:>6.1f}{extra}"


def report(rows: list[tuple[str, dict]], series, out=sys.stdout):
    print(f"{'detector':<34}" + "".join(f"{c:>34}" for c in CORPORA), file=out)
    print(f"{'':<34}" + "".join(f"{'score   hits  FA/1kh':>34}" for _ in CORPORA), file=out)
    for label, scores in rows:
        cells = []
        for c in CORPORA:
            fig = corpus_figures(scores, series, c)
            cells.append(f"{_fmt(fig):>34}")
        print(f"{label:<34}" + "".join(cells), file=out)


SENSITIVITIES = [80, 85, 90, 95, 99]  # the sensitivity curve's points (each a tenfold budget per 10 points)
TWEET_CORPORA = ("realTweets 5-min", "hourly tweet volume")


def report_sensitivities(by_sensitivity: dict[int, dict], series, out=sys.stdout):
    """The shipped settings at each sensitivity run: the trade a user makes with that one setting.
    Sensitivity is the user's choice, not chosen on data, so these rows are not cross-validated;
    each budget's figures are what these files give at it."""
    print("\nthe shipped settings at each sensitivity (the user's choice; budget = false alarms an hour per test):", file=out)
    labelled = [(f"sensitivity {v} (budget {false_alarm_rate(v):.1e})", by_sensitivity[v]) for v in sorted(by_sensitivity)]
    report(labelled, series, out)


def report_tweet_budget(by_sensitivity: dict[int, dict], series, out=sys.stdout):
    """The sensitivity a deployment that judges tweet volume only would choose, out of fold:
    leave-one-tweet-file-out over the sensitivities run, by the mean of the two tweet corpora on
    the other files (the one-standard-error rule, from 95), each file judged at its fold's choice."""
    points = {f"sensitivity {v}": scores for v, scores in by_sensitivity.items()}
    tweets = [s for s in series if set(s.corpora) & set(TWEET_CORPORA)]
    oof, _, chosen, choices = cross_validate(points, tweets, f"sensitivity {DEFAULT_SENSITIVITY}", corpora=TWEET_CORPORA)
    print("\nthe tweet corpora alone, sensitivity chosen by leave-one-tweet-file-out:", file=out)
    picked = ", ".join(f"{g.split('/')[-1]}: {c}" for g, c in sorted(choices.items()))
    for corpus in TWEET_CORPORA:
        fig = corpus_figures(oof, tweets, corpus)
        print(f"  {corpus:<22} out of fold {_fmt(fig)}", file=out)
    print(f"  folds' choices: {picked}; on all tweet files: {chosen}", file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nab-dir", type=Path, default=None)
    ap.add_argument("--cloud-dir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--grid", choices=["default", "full"], default="full")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--sensitivities", type=lambda s: [int(v) for v in s.split(",") if v], default=SENSITIVITIES,
                    help="the shipped settings are also run at these sensitivities (comma-separated; empty: none)")
    ap.add_argument("--try", dest="trial", type=json.loads, action="append", default=[],
                    help='experiments: a JSON settings override as one more grid point (repeatable)')
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    series = load_series(args.nab_dir or default_nab_dir(), args.cloud_dir)
    points = grid(args.grid)
    for trial in args.trial:
        points[json.dumps(trial)] = trial
    per_point: dict[str, dict] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for name, overrides in points.items():
            results = pool.map(_run_detector, [(s, overrides, DEFAULT_SENSITIVITY) for s in series], chunksize=4)
            per_point[name] = {s.name: r for s, r in zip(series, results)}
        baseline_scores = {}
        if not args.no_baselines:
            for name in BASELINES:
                todo = [s for s in series if name not in SLOW_BASELINES or s.step_seconds >= 3600]
                results = pool.map(_run_baseline, [(s, name) for s in todo], chunksize=2)
                baseline_scores[name] = {s.name: r for s, r in zip(todo, results)}
        other = [v for v in args.sensitivities if v != DEFAULT_SENSITIVITY]
        by_sensitivity = {}
        for sensitivity in other:
            results = pool.map(_run_detector, [(s, {}, sensitivity) for s in series], chunksize=4)
            by_sensitivity[sensitivity] = {s.name: r for s, r in zip(series, results)}
    default = default_point(points)
    by_sensitivity[DEFAULT_SENSITIVITY] = per_point[default]  # the shipped settings, run once as a grid point
    oof, insample, chosen, choices = cross_validate(per_point, series, default)
    argmax_oof = cross_validate(per_point, series, default, standard_errors=0.0)[0]
    print(f"online detector, sensitivity 95; {len(points)} grid point(s); in-sample choice: {chosen}")
    print("score = NAB standard-profile normalised score (cloud-monitoring: NAB-like, event windows);")
    print("hits = windows/events detected; FA/1kh = false alarms per 1,000 hours of data\n")
    rows = [("online, out of fold (LOFO)", oof), ("online, in sample", insample)]
    rows += [("  out of fold, plain argmax choice", argmax_oof)]
    rows += [(f"baseline: {n}", s) for n, s in baseline_scores.items()]
    report(rows, series)
    report_gaps(oof, baseline_scores, series)
    if len(by_sensitivity) > 1:
        report_sensitivities(by_sensitivity, series)
        report_tweet_budget(by_sensitivity, series)
    picked = {}
    for c in choices.values():
        picked[c] = picked.get(c, 0) + 1
    print("\nfolds' choices:", ", ".join(f"{n} x{k}" for n, k in sorted(picked.items(), key=lambda x: -x[1])))
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
