"""Incremental (causal) stream detector: each point is judged only from the points before it.

O(1) work per point, state carried from point to point:

* working scale ``z = sqrt(x)`` for non-negative series (variance-stabilising for counts, softer
  than a log on heavy tails), identity otherwise;
* a seasonal profile (one value per phase) when a period is given or found: the period is
  re-detected on the history so far at ``warm``, ``2 warm``, ``4 warm``, ... points (never on
  the future), the profile is initialised by the engine's robust batch fit of that history and
  then follows the data with outlier-clipped updates;
* a slow, outlier-clipped EWMA level of the deseasonalised value;
* for horizons of 1, 6 and 36 points, a short EWMA ``m_h`` of the deseasonalised value, the
  deviation ``D_h = m_h - level`` and its running typical size ``S_h`` (EWMA of the clipped
  ``|D_h|``, floored by a share of the unclipped one so that it cannot collapse on quantised or
  mostly-flat series, and by Poisson noise for integer counts);
* score = ``max_h |D_h| / (1.25 S_h)``: a robust z-score of how far the recent past has moved
  from the long history, at several time scales (a spike shows at h=1, a level shift or a
  slow drift at the longer horizons);
* a point fires when its score exceeds ``k(sensitivity)`` (the engine's band multiplier) and
  ``record_ratio`` times the decaying record of past scores (a new alarm must be comparable
  with the largest excursions of the history, which silences series whose normal life is
  spiky; the record's half-life is 1000 points or 0.6 x the history length, whichever is
  longer), and no alarm was raised in the last ``refractory`` points (one alarm per event).
"""

from __future__ import annotations

import math

import numpy as np

from anomaly_pipeline.detection import engine as _e

CONFIG = {
    "horizons": (1, 6, 36),
    "long_rate": 0.005,  # EWMA rate of the level
    "scale_rate": 0.005,  # EWMA rate of the scales S_h
    "floor_rate": 0.005,  # EWMA rate of the unclipped |D_h| used as a floor of S_h
    "floor_frac": 0.6,
    "season_rate": 0.1,  # per cycle
    "clip": 4.0,  # residuals are clipped at clip * scale when updating the state
    "k_offset": 0.0,  # added to the engine's band multiplier k(sensitivity)
    "record_ratio": 0.6,
    "record_halflife": 1000.0,  # points
    "record_halflife_growth": 0.6,  # half-life at least this share of the history length
    "refractory": 100,  # points
    "sqrt": True,
    "min_warm": 12,
    "max_check": 8192,  # last period re-detection; history used for it is at most this long
}


class _SqrtTransform:
    """``z = sqrt(x)``: Poisson noise is about 0.5 on this scale."""

    log = False

    def __init__(self, counts: bool):
        self.counts = counts
        self.c = 0.0

    def fwd(self, x):
        return np.sqrt(np.maximum(x, 0.0))

    def inv(self, z):
        return np.sign(z) * z * z

    def scalar_count_floor(self, level: float) -> float:
        return 0.5


def _working_scale(head: np.ndarray, cfg) -> _e._Transform | _SqrtTransform:
    tr = _e._Transform(head)
    if tr.log and cfg["sqrt"]:
        return _SqrtTransform(tr.counts)
    return tr


def _init_season(hist: np.ndarray, end: int, p: int) -> np.ndarray:
    """Seasonal profile indexed by ``t % p`` from a robust batch fit of the history ending at ``end``."""
    _, seasonal, _ = _e._fit_batch(hist, p)
    season = np.zeros(p)
    m = hist.size
    for j in range(m - p, m):
        season[(end - m + j) % p] = seasonal[j]
    return season


def _run(x: np.ndarray, *, window, period, sensitivity, cfg):
    """The detector loop. Returns the per-point decisions and the state needed for the output."""
    n = x.size
    k = _e.margin_multiplier(sensitivity) + cfg["k_offset"]
    auto = period is None
    p = int(period) if period is not None else 0
    warm = int(window) if window else _e.suggested_window(p)
    warm = max(cfg["min_warm"], min(warm, n))
    tr = _working_scale(x[:warm], cfg)
    xf = _e._fill_gaps(x)
    z = tr.fwd(xf)
    present = np.isfinite(x)
    floor = _e._scale_floor(z[:warm], tr)

    if p < 2 or warm < 2 * p:
        p = 0
    season = _init_season(z[:warm], warm, p) if p else np.zeros(1)
    head = z[:warm][present[:warm]]
    level = _e._med(head) if head.size else 0.0
    s0 = max(_e._robust_sigma(np.diff(z[:warm])) / math.sqrt(2.0), floor) / 1.2533

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
    rho = cfg["record_ratio"]
    decay = 0.5 ** (1.0 / cfg["record_halflife"])
    refr = int(cfg["refractory"])
    grow = cfg["record_halflife_growth"]
    hl_switch = cfg["record_halflife"] / grow if grow else n
    counts = tr.counts
    cfl = 0.0

    zexp = np.empty(n)
    scale1 = np.empty(n)
    score = np.zeros(n)
    flags = np.zeros(n, dtype=bool)
    last_fire = -(10**12)
    record = 0.0
    next_check = warm if auto else n + 1
    for t in range(n):
        if t == next_check:
            next_check = 2 * t if 2 * t <= cfg["max_check"] else n + 1
            lo = max(0, t - cfg["max_check"])
            q = _e.detect_period(x[lo:t])
            if q != p and q >= 2:
                p = q
                season = _init_season(z[lo:t], t, p)
        ph = t % p if p else 0
        zexp[t] = level + season[ph]
        scale1[t] = S[0] * 1.2533
        if not present[t]:
            continue
        y = z[t] - season[ph]
        if counts:
            cfl = tr.scalar_count_floor(level) / 1.2533
        best = 0.0
        for i in range(H):
            mi = m[i] + a_h[i] * (y - m[i])
            m[i] = mi
            d = abs(mi - level)
            U[i] += a_u * (d - U[i])
            si = S[i]
            if si < u_frac * U[i]:
                si = u_frac * U[i]
            if counts and si < cfl * inv_sqrt_h[i]:
                si = cfl * inv_sqrt_h[i]
            r = d / (1.2533 * si)
            if r > best:
                best = r
            S[i] = max(si + a_s * (min(d, clip * si) - si), floor)
        score[t] = best
        thr = rho * record
        if thr < k:
            thr = k
        if grow and t > hl_switch:
            decay = 0.5 ** (1.0 / (grow * t))
        record *= decay
        if t >= warm:
            if best > record:
                record = best
            if best > thr and t - last_fire > refr:
                flags[t] = True
                last_fire = t
        e = y - level
        lim = clip * S[0] * 1.2533
        ec = lim if e > lim else (-lim if e < -lim else e)
        level += a_l * ec
        if p:
            season[ph] += g_s * (1.0 - a_l) * ec
    return flags, score, zexp, scale1, p, tr, xf, warm, k, floor


def stream_detect(x: np.ndarray, *, window=None, period=None, sensitivity=95, max_anomaly_ratio=0.25, config=None):
    cfg = CONFIG if config is None else {**CONFIG, **config}
    n = x.size
    flags, score, zexp, scale1, p, tr, xf, warm, k, floor = _run(
        x, window=window, period=period, sensitivity=sensitivity, cfg=cfg
    )
    sev = np.where(flags, np.maximum(1.0 - k / np.maximum(score, k), 1e-6), 0.0)
    expected, upper, lower = _e._band(zexp, np.maximum(scale1, floor), k, tr)
    dev = xf - expected
    # keep the contract "anomalous <=> outside the band": the decision can come from a longer
    # horizon (level shift) or be muted by the refractory period, so align the band with it
    up_out, lo_out = dev > upper, -dev > lower
    upper = np.where(flags & (dev > 0) & ~up_out, np.abs(dev) * 0.999, upper)
    lower = np.where(flags & (dev < 0) & ~lo_out, np.abs(dev) * 0.999, lower)
    upper = np.where(~flags & up_out, np.abs(dev), upper)
    lower = np.where(~flags & lo_out, np.abs(dev), lower)
    early = np.arange(n) < warm
    expected = np.where(early, xf, expected)
    upper = np.where(early, 0.0, upper)
    lower = np.where(early, 0.0, lower)
    return _e.SeriesResult(
        period=p,
        expected_values=expected,
        upper_margins=upper,
        lower_margins=lower,
        is_anomaly=flags,
        is_positive_anomaly=flags & (dev > 0),
        is_negative_anomaly=flags & (dev < 0),
        severity=sev,
    )
