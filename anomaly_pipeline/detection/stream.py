"""Incremental (causal) stream detector: each point is judged only from the points before it.

State per series (O(1) work per point):
* working scale ``z = g(x)`` (log for non-negative series, fixed from the first ``window`` points);
* a long, outlier-clipped EWMA baseline ``L`` of ``z`` (plus a per-phase seasonal profile when a
  period is known or detected from the warm-up block);
* for a few horizons ``h`` (1 point, a few points, tens of points) a short EWMA ``m_h`` of the
  deseasonalised value and the running mean absolute size ``S_h`` of ``D_h = m_h - L``;
* the score of a point is ``max_h |D_h| / (1.25 S_h)``, a robust z-score of "how far the recent
  past has moved from the long history" at several time scales (a spike shows at h=1, a level
  shift or slow drift at longer h);
* a point fires when its score exceeds ``k(sensitivity)`` and no detection happened in the last
  ``refractory`` points (one alarm per event, not one per point).
"""

from __future__ import annotations

import math

import numpy as np

from anomaly_pipeline.detection import engine as _e

CONFIG = {
    "horizons": (1, 6, 36),
    "long_rate": 0.005,  # EWMA rate of the long baseline
    "scale_rate": 0.005,  # EWMA rate of the score scales
    "season_rate": 0.1,  # per cycle
    "season_bins": 1000,
    "clip": 4.0,  # residuals are clipped at clip * scale when updating the state
    "k_offset": 0.0,  # added to the engine's margin multiplier
    "refractory": 100,  # points
    "log": "sqrt",
    "min_warm": 12,
    "detect_season": True,
    "unclipped_rate": 0.005,
    "unclipped_frac": 0.6,
    "record_ratio": 0.7,
    "quantile_factor": 0.0,  # alarm threshold at least this times the quantile_level score quantile
    "quantile_level": 0.995,
    "score_cap": 1e9,  # in units of k
    "rearm": 1e9,  # after an alarm, wait until the score falls below rearm * k
    "record_halflife": 1000.0,
    "max_check": 8192,  # period re-detected at warm, 2*warm, 4*warm, ... on the history so far
}


class _SqrtTransform:
    """``z = sqrt(x)``: variance-stabilising for counts (Poisson noise 0.5 on this scale)."""

    log = False

    def __init__(self, counts):
        self.counts = counts
        self.c = 0.0

    def fwd(self, x):
        return np.sqrt(np.maximum(x, 0.0))

    def inv(self, z):
        return np.sign(z) * z * z

    def scalar_count_floor(self, level):
        return 0.5


def _init_season(hist, end, p, cfg):
    """Seasonal profile in ``nb`` phase bins (at most ``season_bins`` per cycle, so one bin
    pools several neighbouring phases of a long period) from the history ending at ``end``."""
    nb = min(p, cfg["season_bins"])
    _, seasonal, _ = _e._fit_batch(hist, p)
    prof = np.zeros(nb)
    cnt = np.zeros(nb)
    m = hist.size
    for j in range(m - p, m):
        b = ((end - m + j) % p) * nb // p
        prof[b] += seasonal[j]
        cnt[b] += 1
    return nb, prof / np.maximum(cnt, 1), cfg["season_rate"] * nb / p


def stream_detect(x: np.ndarray, *, window=None, period=None, sensitivity=95, max_anomaly_ratio=0.25, config=None):
    cfg = CONFIG if config is None else {**CONFIG, **config}
    n = x.size
    k = _e.margin_multiplier(sensitivity) + cfg["k_offset"]
    period_given = period
    period = int(period) if period is not None else 0
    warm = int(window) if window else _e.suggested_window(period)
    warm = max(cfg["min_warm"], min(warm, n))
    tr = _e._Transform(x[:warm])
    if cfg["log"] == "sqrt" and tr.log:
        tr = _SqrtTransform(tr.counts)
    elif not cfg["log"]:
        tr.log = False
        tr.counts = False
    xf = _e._fill_gaps(x)
    z = tr.fwd(xf)
    present = np.isfinite(x)
    floor = _e._scale_floor(z[:warm], tr)

    p = period if period >= 2 and warm >= 2 * period else 0
    head = z[:warm]
    nb, season, g_b = _init_season(head, warm, p, cfg) if p else (1, np.zeros(1), 0.0)
    level = float(np.median(head[present[:warm]])) if present[:warm].any() else 0.0
    s0 = max(_e._robust_sigma(np.diff(head)) / math.sqrt(2.0), floor)

    hs = cfg["horizons"]
    H = len(hs)
    a_h = [2.0 / (h + 1.0) for h in hs]
    m = [level] * H
    S = [s0 / 1.2533] * H
    a_l = cfg["long_rate"]
    a_s = cfg["scale_rate"]
    g_s = cfg["season_rate"]
    clip = cfg["clip"]
    refr = int(cfg["refractory"])

    zexp = np.empty(n)
    sc1 = np.empty(n)
    score = np.zeros(n)
    flags = np.zeros(n, dtype=bool)
    last_fire = -(10**12)
    counts, cc = tr.counts, tr.c
    cfl = 0.0
    U = list(S)  # unclipped slow mean |D|: keeps the scale from collapsing on quantised series
    a_u = cfg["unclipped_rate"]
    u_frac = cfg["unclipped_frac"]
    inv_sqrt_h = [1.0 / math.sqrt(h) for h in hs]
    rho = cfg["record_ratio"]
    decay = 0.5 ** (1.0 / cfg["record_halflife"])
    cap = cfg["score_cap"] * k
    rearm = cfg["rearm"] * k
    armed = True
    q_c, q_level = cfg["quantile_factor"], cfg["quantile_level"]
    bins_per_unit, nbins = 10.0, 1000
    hist = [0] * nbins  # histogram of past scores (resolution 0.1, capped at 100)
    nh, next_q, qv = 0, warm + 100, 0.0
    mx = 0.0  # decaying maximum of past scores: a new alarm must come close to the record
    auto = period_given is None and cfg["detect_season"]
    next_check = warm if auto else n + 1
    for t in range(n):
        if t == next_check:
            next_check = 2 * t if 2 * t <= cfg["max_check"] else n + 1
            lo = max(0, t - cfg["max_check"])
            q = _e.detect_period(x[lo:t])
            if q != p and q >= 2:
                p = q
                period = q
                nb, season, g_b = _init_season(z[lo:t], t, p, cfg)
        ph = (t % p) * nb // p if p else 0
        base = level + season[ph]
        zexp[t] = base
        sc1[t] = S[0] * 1.2533
        if not present[t]:
            continue
        y = z[t] - season[ph]
        best = 0.0
        if counts:
            cfl = tr.scalar_count_floor(level) / 1.2533
        for i in range(H):
            mi = m[i] + a_h[i] * (y - m[i])
            m[i] = mi
            d = abs(mi - level)
            U[i] += a_u * (d - U[i])
            si = S[i]
            lo = u_frac * U[i]
            if si < lo:
                si = lo
            if counts and si < cfl * inv_sqrt_h[i]:
                si = cfl * inv_sqrt_h[i]
            r = d / (1.2533 * si)
            if r > best:
                best = r
            S[i] = max(si + a_s * (min(d, clip * si) - si), floor)
        score[t] = best
        capped = best if best < cap else cap
        thr = rho * mx
        if thr < k:
            thr = k
        if q_c > 0.0 and t >= warm:
            hist[min(int(best * bins_per_unit), nbins - 1)] += 1
            nh += 1
            if t >= next_q:
                next_q = t + 25
                # the score value below which a fraction q_level of the past scores lie
                need = q_level * nh
                acc = 0.0
                for bi in range(nbins):
                    acc += hist[bi]
                    if acc >= need:
                        break
                qv = q_c * (bi + 1) / bins_per_unit
            if qv > thr:
                thr = qv
        mx *= decay
        if capped > mx and t >= warm:
            mx = capped
        if armed:
            if t >= warm and best > thr and t - last_fire > refr:
                flags[t] = True
                last_fire = t
                armed = False
        elif best < rearm:
            armed = True
        e = y - level
        lim = clip * S[0] * 1.2533
        ec = lim if e > lim else (-lim if e < -lim else e)
        level += a_l * ec
        if p:
            season[ph] += g_b * (1.0 - a_l) * ec
    global _LAST_SCORE
    _LAST_SCORE = score
    sev = np.where(flags, 1.0 - k / np.maximum(score, k), 0.0)
    sev = np.where(flags & (sev <= 0.0), 1e-6, sev)
    band = k * np.maximum(sc1, floor)
    expected, upper, lower = _e._band(zexp, band / k, k, tr)
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
    pos = flags & (dev > 0)
    neg = flags & (dev < 0)
    return _e.SeriesResult(
        period=period,
        expected_values=expected,
        upper_margins=upper,
        lower_margins=lower,
        is_anomaly=flags,
        is_positive_anomaly=pos,
        is_negative_anomaly=neg,
        severity=sev,
    )
