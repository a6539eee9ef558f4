"""Incremental (causal) stream detector: each point is judged only from the points before it."""

from __future__ import annotations

import numpy as np

from anomaly_pipeline.detection import engine as _e


def stream_detect(x: np.ndarray, *, window=None, period=None, sensitivity=95, max_anomaly_ratio=0.25):
    n = x.size
    k = _e.margin_multiplier(sensitivity)
    warm = int(window) if window else None
    if period is None:
        probe = x[: max(warm or 0, min(n, 200))]
        period = _e.detect_period(probe) if probe.size >= 12 else 0
    period = int(period)
    if warm is None:
        warm = _e.suggested_window(period)
    warm = max(12, min(warm, n))
    tr = _e._Transform(x[:warm])
    xf = _e._fill_gaps(x)
    z = tr.fwd(xf)
    present = np.isfinite(x)

    zexp = z.copy()
    scale_arr = np.zeros(n)
    flags = np.zeros(n, dtype=bool)
    sev = np.zeros(n)
    # initial state from the warm-up block
    trend, seasonal, _ = _e._fit_batch(z[:warm], period)
    p = period if period >= 2 and warm >= 2 * period else 0
    level = float(np.median((z[:warm] - seasonal)[-max(p, 5):]))
    season = np.zeros(max(p, 1))
    if p:
        for j in range(p):
            season[(warm - p + j) % p] = seasonal[warm - p + j]
    s = max(_e._robust_sigma(z[:warm] - trend - seasonal), _e._scale_floor(z[:warm], tr))
    floor = _e._scale_floor(z[:warm], tr)
    alpha = 2.0 / (warm + 1.0)
    beta = alpha
    gamma = 0.2
    clip = 3.0
    for t in range(warm, n):
        ph = t % p if p else 0
        pred = level + season[ph]
        zexp[t] = pred
        scale_arr[t] = s
        if not present[t]:
            continue
        e = z[t] - pred
        a = abs(e)
        if a > k * s:
            flags[t] = True
            sev[t] = 1.0 - k * s / a
        ec = min(max(e, -clip * s), clip * s)
        level += alpha * ec
        if p:
            season[ph] += gamma * (1.0 - alpha) * ec
        s = max((1.0 - beta) * s + beta * 1.2533 * min(a, clip * s), floor)
    expected, upper, lower = _e._band(zexp, np.maximum(scale_arr, 0.0), k, tr)
    early = np.arange(n) < warm
    expected = np.where(early, xf, expected)
    upper = np.where(early, 0.0, upper)
    lower = np.where(early, 0.0, lower)
    pos = flags & (z > zexp)
    neg = flags & (z < zexp)
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
