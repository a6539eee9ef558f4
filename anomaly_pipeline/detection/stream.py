"""Incremental (causal) stream detector: each point is judged only from the points up to it.

Constant work per point (plus one nearest-neighbour search in a bounded memory), state carried
from point to point:

* working scale ``z = sqrt(x)`` for non-negative series (variance-stabilising for counts),
  identity otherwise;
* a seasonal profile (one value per phase): the period is (re-)detected on the history so far
  at ``warm``, ``2 warm``, ``4 warm``, ... points (never on the future), preferring a calendar
  cycle of the series' granularity (a day, a week), and kept only if a profile learnt on the
  earlier history predicts the latest quarter of it (removes ``min_season_gain`` of the error:
  a weak cycle in noisy 5-minute counts is better left out); the profile starts from the phase
  medians of that history and follows the data with outlier-clipped updates
  (:mod:`stream_season`);
* a slow, outlier-clipped EWMA level of the deseasonalised value;
* **level score**: for horizons of 1, 6 and 36 points, a short EWMA ``m_h`` of the
  deseasonalised value, its deviation ``D_h = m_h - level`` and the deviation's running
  typical size ``S_h``; ``max_h |D_h| / (1.25 S_h)`` is a robust z-score of how far the recent
  past has moved from the long history (a spike shows at h=1, a level shift at longer ones);
* **shape scores** (:mod:`stream_shape`), at two time scales (the last 8 values, and the last
  32 values as 8 means of 4): distance of the recent window to the nearest window in a memory
  of the novel windows seen so far, in units of the typical such distance (a pattern never
  seen before: a new oscillation, a stuck signal, a change of noise); for counts the typical
  distance is never taken below their Poisson noise (0.5 on the sqrt scale), so that sparse
  counts (mostly 0, the odd 1 to 3) do not make every small change a new shape;
* the point's **score** ``u`` is the larger of the level score over ``k(sensitivity)`` and the
  shape scores over ``shape_k * k / k(95)``, averaged over the last ``smooth`` points;
* an alarm is raised when ``u > 1`` and ``u > min(record_ratio x record, record_cap)``, where
  the record is the decaying maximum of past scores (the novelty rule: a new alarm must be
  comparable with the largest excursions of the history, which silences series whose normal
  life is spiky; the record ignores the first ``learn`` points, while the model is still
  settling, its half-life grows with the history, and the cap keeps one huge early excursion
  from muting everything after it), and no alarm was raised in the refractory period before it
  (one alarm per event: 36 points, or 2% of the history so far if longer);
* **familiar excursions** are muted (:mod:`stream_familiar`): an event is a run of scores
  above 0.8; each event that crossed the alarm threshold is remembered (the last 256) by its
  largest deviation from the level, the working-scale value there, its side and its peak score.
  An alarm is dropped when at least 3 remembered events on the same side, with a peak score at
  least 80% of the current event's, went about as far (a deviation between 85% and 125% of the
  current one) or reached the same value (within 15% of the current deviation): a spike that
  keeps coming back to the same height, like a daily job that drifts a few points from day to
  day, is normal; a new, larger or different excursion still alarms.

Margins are derived from the alarm: the band is ``k`` typical one-step deviations wide, and is
narrowed or widened where needed so that a point is anomalous exactly when it leaves
``[expected - lower, expected + upper]``.
"""

from __future__ import annotations

import math

import numpy as np

from anomaly_pipeline.detection.engine import SeriesResult, _fill_gaps, margin_multiplier
from anomaly_pipeline.detection.stream_season import find_period, phase_profile, seasonal_gain
from anomaly_pipeline.detection.stream_familiar import FamiliarExcursions
from anomaly_pipeline.detection.stream_shape import ShapeMemory

CONFIG = {
    "horizons": (1, 6, 36),
    "long_rate": 0.005,  # EWMA rate of the level
    "scale_rate": 0.005,  # EWMA rate of the scales S_h
    "floor_rate": 0.005,  # EWMA rate of the unclipped |D_h| used as a floor of S_h
    "floor_frac": 0.6,
    "season_rate": 0.1,  # per cycle
    "min_season_gain": 0.33,  # a seasonal model must remove this share of the held-out error
    "clip": 4.0,  # residuals are clipped at clip * scale when updating the state
    "shapes": ((8, 1), (8, 4)),  # (width, pool) of each shape memory: 8 points, 8 means of 4 points
    "shape_capacity": 1500,
    "shape_add_ratio": 0.5,
    "shape_k": 2.75,  # shape score reaching the threshold at sensitivity 95
    "shape_noise": 0.2,  # typical shape distance floored at this share of the mean absolute step
    "shape_count_floor": 0.5,  # and, for counts, at their Poisson noise on the sqrt scale (/ sqrt(pool))
    "smooth": 3,  # points averaged into the alarm score
    "raw_weight": 0.0,  # the unsmoothed score, times this, also counts
    "learn": 100,  # points whose scores do not enter the record
    "record_ratio": 0.5,
    "record_cap": 6.0,  # the novelty rule never asks more than this (x the threshold)
    "record_halflife": 3000.0,  # points
    "record_halflife_growth": 0.6,  # half-life at least this share of the history length
    "event_level": 0.8,  # an event is a run of scores above this
    "familiar_count": 3,  # 0 = off; an alarm is muted when this many past events went about as far
    "familiar_tol": 0.15,  # "about as far": within this share of the event's deviation from the level
    "familiar_value": True,  # the same value (not only the same deviation) is also familiar
    "familiar_span": 0.25,  # past events up to (1 + span) x as far from the level also count
    "familiar_memory": 256,  # past events remembered
    "familiar_score": 0.8,  # matching past events must have peaked at least this share of the score
    "refractory": 36,  # points
    "refractory_growth": 0.02,  # the refractory period is at least this share of the history
    "warm": 49,  # points before any alarm (4 periods + 1 when a period is given)
    "min_warm": 12,
    "max_check": 8192,  # last period re-detection; history used for it is at most this long
}

_K95 = margin_multiplier(95)


class _Scale:
    """Working scale: ``sqrt`` for non-negative series (Poisson noise 0.5 on it), else identity."""

    def __init__(self, head: np.ndarray):
        finite = head[np.isfinite(head)]
        self.sqrt = bool(finite.size) and float(finite.min()) >= 0.0
        self.counts = self.sqrt and bool(np.all(finite == np.round(finite)))
        if self.sqrt:
            self.floor = 1e-3
        else:
            self.floor = 1e-3 * (float(np.median(np.abs(finite))) if finite.size else 0.0) + 1e-9

    def fwd(self, x):
        return np.sqrt(np.maximum(x, 0.0)) if self.sqrt else x

    def inv(self, z):
        return np.sign(z) * z * z if self.sqrt else z


def _useful_period(z: np.ndarray, natural: tuple[int, ...], min_gain: float) -> int:
    """The period of the history, if its seasonal profile predicts held-out data well enough:
    the one :func:`find_period` picks, else whichever of the measured lag and the calendar cycles
    (with three cycles of history) predicts best, else none."""
    q = find_period(z, natural=natural)
    if q >= 2 and seasonal_gain(z, q) >= min_gain:
        return q
    if not natural:  # find_period has already measured the lag, and it did not predict
        return 0
    others = ({find_period(z)} | {c for c in natural if 3 * c <= z.size}) - {q}
    gain, best = max(((seasonal_gain(z, c), c) for c in others if c >= 2), default=(0.0, 0))
    return best if gain >= min_gain else 0


def _run(x: np.ndarray, *, window, period, sensitivity, cfg, natural=()):
    """The detector loop. Returns the decisions, the alarm scores and the band's ingredients."""
    n = x.size
    k = margin_multiplier(sensitivity)
    auto = period is None
    p = int(period) if period is not None else 0
    warm = int(window) if window else (4 * p + 1 if p >= 2 else int(cfg["warm"]))
    warm = max(cfg["min_warm"], min(warm, n))
    tr = _Scale(x[:warm])
    xf = _fill_gaps(x)
    z = tr.fwd(xf)
    present = np.isfinite(x)
    floor = tr.floor

    if p < 2 or warm < 2 * p:
        p = 0
    season = phase_profile(z[:warm], p, warm) if p else np.zeros(1)
    head = z[:warm][present[:warm]]
    level = float(np.median(head)) if head.size else 0.0
    dz = np.diff(z[:warm])
    s0 = 1.4826 * float(np.median(np.abs(dz - np.median(dz)))) / math.sqrt(2.0) if dz.size else 0.0
    s0 = max(s0, floor) / 1.2533

    hs = cfg["horizons"]
    H = len(hs)
    a_h = [2.0 / (h + 1.0) for h in hs]
    inv_sqrt_h = [1.0 / math.sqrt(h) for h in hs]
    m = [level] * H
    S = [s0] * H
    U = [s0] * H
    a_l, a_s, a_u = cfg["long_rate"], cfg["scale_rate"], cfg["floor_rate"]
    u_frac, clip = cfg["floor_frac"], cfg["clip"]
    g_s = cfg["season_rate"]
    cfl = 0.5 / 1.2533 if tr.counts else 0.0
    shapes = [
        ShapeMemory(
            w,
            pool,
            cfg["shape_capacity"],
            cfg["shape_add_ratio"],
            noise_frac=cfg["shape_noise"],
            abs_floor=cfg["shape_count_floor"] / math.sqrt(pool) if tr.counts else 0.0,
        )
        for w, pool in cfg["shapes"]
    ]
    k_shape = cfg["shape_k"] * k / _K95
    sm = max(1, int(cfg["smooth"]))
    recent = [0.0] * sm
    raw_w = cfg["raw_weight"]
    rho = cfg["record_ratio"]
    cap = cfg["record_cap"]
    hl = cfg["record_halflife"]
    decay = 0.5 ** (1.0 / hl)
    grow = cfg["record_halflife_growth"]
    hl_switch = hl / grow if grow else n
    learn = max(warm, int(cfg["learn"]))
    refr = int(cfg["refractory"])
    refr_frac = cfg["refractory_growth"]

    zexp = np.empty(n)
    scale1 = np.empty(n)
    score = np.zeros(n)
    flags = np.zeros(n, dtype=bool)
    last_fire = -(10**12)
    record = 0.0
    familiar = (
        FamiliarExcursions(
            count=cfg["familiar_count"],
            tol=cfg["familiar_tol"],
            span=cfg["familiar_span"],
            min_score_share=cfg["familiar_score"],
            by_value=cfg["familiar_value"],
            memory=cfg["familiar_memory"],
            event_level=cfg["event_level"],
        )
        if cfg["familiar_count"]
        else None
    )
    next_check = warm if auto else n + 1
    for t in range(n):
        if t == next_check:
            next_check = 2 * t if 2 * t <= cfg["max_check"] else n + 1
            lo = max(0, t - cfg["max_check"])
            q = _useful_period(z[lo:t], natural, cfg["min_season_gain"])
            if q == 0 and p:  # the cycle no longer predicts the data: drop the seasonal model
                p = 0
                season = np.zeros(1)
            if q != p and q >= 2:
                p = q
                season = phase_profile(z[lo:t], p, t)
        ph = t % p if p else 0
        zexp[t] = level + season[ph]
        scale1[t] = S[0] * 1.2533
        if not present[t]:
            continue
        y = z[t] - season[ph]
        best = 0.0
        for i in range(H):
            mi = m[i] + a_h[i] * (y - m[i])
            m[i] = mi
            d = abs(mi - level)
            U[i] += a_u * (d - U[i])
            si = S[i]
            if si < u_frac * U[i]:
                si = u_frac * U[i]
            if si < cfl * inv_sqrt_h[i]:
                si = cfl * inv_sqrt_h[i]
            r = d / (1.2533 * si)
            if r > best:
                best = r
            S[i] = max(si + a_s * (min(d, clip * si) - si), floor)
        u = best / k
        for shape in shapes:
            v = shape.step(z[t]) / k_shape
            if v > u:
                u = v
        recent[t % sm] = u
        ur = u * raw_w
        u = sum(recent) / sm
        uf = ur if ur > u else u  # the score the alarm decision uses
        score[t] = uf
        thr = rho * record
        if thr > cap:
            thr = cap
        if thr < 1.0:
            thr = 1.0
        if grow and t > hl_switch:
            decay = 0.5 ** (1.0 / (grow * t))
        record *= decay
        if t >= learn and u > record:
            record = u
        e = y - level
        if familiar is not None:
            familiar.observe(u, z[t], e, thr, remember=t >= warm)
        if t >= warm and uf > thr and t - last_fire > max(refr, refr_frac * t):
            if familiar is None or not familiar.is_familiar(z[t], e, uf):
                flags[t] = True
                last_fire = t
        lim = clip * S[0] * 1.2533
        ec = lim if e > lim else (-lim if e < -lim else e)
        level += a_l * ec
        if p:
            season[ph] += g_s * (1.0 - a_l) * ec
    return flags, score, zexp, scale1, p, tr, xf, warm, k


def stream_detect(
    x: np.ndarray, *, window=None, period=None, sensitivity=95, max_anomaly_ratio=0.25, natural_periods=(), config=None
):
    cfg = CONFIG if config is None else {**CONFIG, **config}
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n = x.size
    flags, score, zexp, scale1, p, tr, xf, warm, k = _run(
        x, window=window, period=period, sensitivity=sensitivity, cfg=cfg, natural=tuple(natural_periods)
    )
    sev = np.where(flags, np.clip(1.0 - 1.0 / np.maximum(score, 1.0), 1e-6, 1.0), 0.0)
    width = k * np.maximum(scale1, tr.floor)
    expected = tr.inv(zexp)
    upper = tr.inv(zexp + width) - expected
    lower = expected - tr.inv(zexp - width)
    dev = xf - expected
    # keep the contract "anomalous <=> outside the band": the decision can come from a longer
    # horizon, the shape score or be muted by the novelty rule, so align the band with it
    up_out, lo_out = dev > upper, -dev > lower
    upper = np.where(flags & (dev > 0) & ~up_out, np.abs(dev) * 0.999, upper)
    lower = np.where(flags & (dev < 0) & ~lo_out, np.abs(dev) * 0.999, lower)
    upper = np.where(~flags & up_out, np.abs(dev) * (1.0 + 1e-9), upper)
    lower = np.where(~flags & lo_out, np.abs(dev) * (1.0 + 1e-9), lower)
    # a flagged point exactly on the expected value: pull the band to its side
    on = flags & (dev == 0)
    expected = np.where(on, xf - np.maximum(np.abs(xf), 1.0) * 1e-6, expected)
    upper = np.where(on, 0.0, upper)
    early = np.arange(n) < warm
    expected = np.where(early, xf, expected)
    upper = np.where(early, 0.0, upper)
    lower = np.where(early, 0.0, lower)
    return SeriesResult(
        period=p,
        expected_values=expected,
        upper_margins=upper,
        lower_margins=lower,
        is_anomaly=flags,
        is_positive_anomaly=flags & (xf >= expected),
        is_negative_anomaly=flags & (xf < expected),
        severity=sev,
    )
