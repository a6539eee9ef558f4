"""Shape novelty for the stream detector: how unlike everything seen so far the recent window is.

The last ``width * pool`` working-scale values are mean-pooled into a ``width``-vector; its
score is the RMS distance to the nearest vector in a memory of past windows, divided by the
typical nearest-neighbour distance of the series (a slow, clipped running mean, floored by
``noise_frac`` times the mean absolute step of the series, so that a series that is mostly one
repeated value, such as zeros, cannot make every change infinitely novel, and by ``abs_floor``,
the noise level below which no difference counts, e.g. the Poisson noise of counts), so that it
reads like a z-score.  The memory works like the categories of an adaptive-resonance network
(ARTime) or a KNN-CAD reservoir: a past window is stored only if it was itself novel when it
was seen (``add_ratio`` times the typical distance), so a pattern that recurs stops scoring
after its first appearance, and the memory stays small.  When the memory is full the oldest
entry is replaced.  Windows are stored ``width * pool`` points late, so that the current
window never matches (a shifted copy of) itself.
"""

from __future__ import annotations

import numpy as np


class ShapeMemory:
    def __init__(
        self,
        width: int = 16,
        pool: int = 1,
        capacity: int = 1500,
        add_ratio: float = 0.5,
        rate: float = 0.002,
        noise_frac: float = 0.5,
        abs_floor: float = 0.0,
    ):
        self.w = int(width)
        self.pool = int(pool)
        self.span = self.w * self.pool
        self.cap = int(capacity)
        self.add_ratio = float(add_ratio)
        self.rate = float(rate)
        self.mem = np.empty((self.cap, self.w))
        self.count = 0
        self.next_slot = 0
        self.hist = np.zeros(2 * self.span)  # ring of the last 2 * span values
        self.nov = np.zeros(self.span + 1)  # ring of past novelty flags (to store late)
        self.t = 0
        self.typ = 0.0
        self.n_typ = 0
        self.noise_frac = float(noise_frac)
        self.abs_floor = float(abs_floor)
        self.step_size = 0.0  # running mean of |z_t - z_(t-1)|

    def _window(self, end: int) -> np.ndarray:
        """The pooled window of the ``span`` values ending at step ``end`` (still in the ring)."""
        idx = np.arange(end - self.span + 1, end + 1) % self.hist.size
        v = self.hist[idx]
        if self.pool > 1:
            v = v.reshape(self.w, self.pool).mean(axis=1)
        return v

    def step(self, z: float) -> float:
        """Feed one working-scale value; return the novelty score of the window ending here."""
        t = self.t
        if t:
            a = max(self.rate, 1.0 / t)
            self.step_size += a * (abs(z - self.hist[(t - 1) % self.hist.size]) - self.step_size)
        self.hist[t % self.hist.size] = z
        self.t = t + 1
        if t + 1 < self.span:
            return 0.0
        v = self._window(t)
        score = 0.0
        novel = True
        if self.count:
            d = self.mem[: self.count] - v
            dist = float(np.sqrt(np.min(np.einsum("ij,ij->i", d, d)) / self.w))
            if self.n_typ == 0:
                self.typ = dist
            else:
                a = max(self.rate, 1.0 / (self.n_typ + 1))
                lim = 4.0 * self.typ
                self.typ += a * ((dist if dist < lim else lim) - self.typ)
            self.n_typ += 1
            typ = max(self.typ, self.noise_frac * self.step_size, self.abs_floor)
            score = dist / typ if typ > 0 else (0.0 if dist == 0 else 10.0)
            novel = dist > self.add_ratio * self.typ
        self.nov[t % self.nov.size] = 1.0 if novel else 0.0
        # store the window that ended span steps ago, if it was novel when it was seen
        old = t - self.span
        if old >= self.span - 1 and self.nov[old % self.nov.size]:
            self.mem[self.next_slot] = self._window(old)
            self.next_slot = (self.next_slot + 1) % self.cap
            if self.count < self.cap:
                self.count += 1
        return score
