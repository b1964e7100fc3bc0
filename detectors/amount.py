"""Amount anomaly: a payment far from its key's own usual amount.

Robust rolling statistics per key (a counterparty within an org, or a whole
org): the median and the median absolute deviation (MAD) of the last
``window`` amounts, on a log scale — amounts are multiplicative, so "ten times
the usual" is the same distance for a 2,000 CNY and a 2,000,000 CNY supplier.
The modified z-score ``0.6745 * |ln x - median| / MAD`` (Iglewicz and
Hoaglin) is compared with their outlier cut-off of 3.5: at the cut-off the
score is 0.5, at three times it 0.75.

Examples
--------
>>> import numpy as np
>>> det = RobustAmount(window=20, warmup=5)
>>> usual = [1000.0, 1100.0, 950.0, 1020.0, 980.0, 1050.0]
>>> for a in usual:
...     det.learn_one({"key": ("ORG01", "SUP-1"), "amount": a, "t": 0.0})
>>> round(det.score_one({"key": ("ORG01", "SUP-1"), "amount": 1010.0, "t": 0.0}), 2)
0.0
>>> round(det.score_one({"key": ("ORG01", "SUP-1"), "amount": 25000.0, "t": 0.0}), 2)
0.93
>>> det.score_one({"key": ("ORG01", "SUP-2"), "amount": 25000.0, "t": 0.0})  # no history yet
0.0

References
----------
Iglewicz, B. and Hoaglin, D. (1993). How to Detect and Handle Outliers. ASQC.
"""

from __future__ import annotations

import bisect
import math
from array import array

import numpy as np

from detectors.base import Bounds, Columns, Detector, Scores, max_of_parts, squash

__all__ = ["RobustAmount"]

_Z_CUTOFF = 3.5
_SWEEP_EVERY = 20_000


class _History:
    """A key's last log amounts, in arrival order, and sorted once the key is scored.
    Kept as packed doubles: a key holds a few values, and keys grow with the stream's
    density (one per contract), so a list of float objects and a deque (whose first
    block alone is over 500 bytes) would be most of a dense stream's memory. Most keys
    never reach ``warmup``: they keep no sorted copy (``ordered`` is None until asked)."""

    __slots__ = ("arrived", "ordered", "last_t")

    def __init__(self, values: list[float] | None = None) -> None:
        self.arrived = array("d", values) if values else array("d")  # log amounts, oldest first
        self.ordered: array | None = None  # the same, sorted: made when first scored, then kept
        self.last_t = -math.inf

    def sorted_values(self) -> array:
        """The amounts sorted: made on first use, then kept sorted as they come and go."""
        if self.ordered is None:
            self.ordered = array("d", sorted(self.arrived))
        return self.ordered


class RobustAmount(Detector):
    """Median/MAD of the last ``window`` log-amounts per key.

    Parameters
    ----------
    window
        How many past amounts per key the statistics use.
    warmup
        Past amounts a key needs before it is scored (score 0 until then).
    min_spread
        Floor on the log-scale MAD, so a supplier paid the very same amount
        every month does not alert on a 1% change (0.05 ≈ 5%).
    two_sided
        Also flag amounts far *below* the usual (off by default: the risk is
        in overpayment).
    max_idle_days
        A key not seen for this long is forgotten (keeps state bounded).
    """

    per_key = ("_keys",)

    def __init__(self, window: int = 30, warmup: int = 8, min_spread: float = 0.05, two_sided: bool = False,
                 max_idle_days: float = 400.0):
        self.window = window
        self.warmup = warmup
        self.min_spread = min_spread
        self.two_sided = two_sided
        self.max_idle_days = max_idle_days
        self._keys: dict[object, _History] = {}
        self._learned = 0
        self._newest = -math.inf

    # --- one key ----------------------------------------------------------------
    def _stats(self, h: _History | None) -> tuple[float, float, int]:
        """(median, MAD) of a key's log amounts, and how many there are."""
        if h is None or not h.arrived:
            return math.nan, math.nan, 0
        s = h.sorted_values()
        n = len(s)
        med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
        mad = sorted_mad(s, med)
        return med, mad, n

    def _score(self, h: _History | None, amount: float) -> tuple[float, float, float, int]:
        med, mad, n = self._stats(h)
        if n < self.warmup or not amount > 0:
            return 0.0, math.nan, math.nan, n
        dev = math.log(amount) - med
        if not self.two_sided:
            dev = max(dev, 0.0)
        z = 0.6745 * abs(dev) / max(mad, self.min_spread)
        return float(squash(z / _Z_CUTOFF)), math.exp(med), z, n

    def _learn(self, key: object, amount: float, t: float) -> None:
        if not amount > 0:
            return
        h = self._keys.get(key)
        if h is None:
            h = self._keys[key] = _History()
        v = math.log(amount)
        h.arrived.append(v)
        if h.ordered is not None:
            bisect.insort(h.ordered, v)
        if len(h.arrived) > self.window:
            old = h.arrived.pop(0)
            if h.ordered is not None:
                del h.ordered[bisect.bisect_left(h.ordered, old)]
        h.last_t = max(h.last_t, t)
        self._newest = max(self._newest, t)
        self._learned += 1
        if self._learned % _SWEEP_EVERY == 0:
            horizon = self._newest - self.max_idle_days * 86400
            for k in [k for k, kh in self._keys.items() if kh.last_t < horizon]:
                del self._keys[k]

    # --- batches --------------------------------------------------------------------
    def score_many(self, X: Columns) -> Scores:
        rows = [self._score(self._keys.get(k), a) for k, a in zip(X["key"].tolist(), X["amount"].tolist())]
        return _scores(rows, X["amount"])

    def learn_many(self, X: Columns) -> None:
        for k, a, t in zip(X["key"].tolist(), X["amount"].tolist(), X["t"].tolist()):
            self._learn(k, a, t)

    def process_many(self, X: Columns) -> Scores:
        return type(self).process_pooled([self], X, [(0, len(X["t"]))])

    @classmethod
    def process_pooled(cls, models: list[Detector], X: Columns, bounds: Bounds) -> Scores:
        """Each org's rows scored then learned by its own model, in one loop over
        all rows and one pass of arithmetic (the per-org cost of a small org).
        The models share their settings (one detector spec), not their keys."""
        keys, amounts, times = X["key"].tolist(), X["amount"].tolist(), X["t"].tolist()
        n = len(keys)
        score, usual, robust_z, history = [0.0] * n, [math.nan] * n, [math.nan] * n, [0] * n
        if models:
            first: RobustAmount = models[0]  # type: ignore[assignment]
            warmup, floor, two_sided, window = first.warmup, first.min_spread, first.two_sided, first.window
            log, exp, insort, bisect_left = math.log, math.exp, bisect.insort, bisect.bisect_left
            # _score then _learn per row, inlined: this loop is the detector's cost.
            for model, (lo, hi) in zip(models, bounds):
                store = model._keys  # type: ignore[attr-defined]
                for i in range(lo, hi):
                    a = amounts[i]
                    if not a > 0:
                        continue
                    k = keys[i]
                    v = log(a)
                    h = store.get(k)
                    if h is None:
                        h = store[k] = _History()
                    else:
                        m = len(h.arrived)
                        history[i] = m
                        if m >= warmup:
                            s = h.ordered if h.ordered is not None else h.sorted_values()
                            med = s[m // 2] if m % 2 else 0.5 * (s[m // 2 - 1] + s[m // 2])
                            usual[i] = exp(med)
                            if v > med or two_sided:  # at or below the usual scores 0: no MAD needed
                                z = 0.6745 * abs(v - med) / max(sorted_mad(s, med), floor)
                                ratio = z / _Z_CUTOFF
                                score[i], robust_z[i] = ratio / (ratio + 1.0), z
                            else:
                                robust_z[i] = 0.0
                    h.arrived.append(v)
                    s = h.ordered
                    if s is not None:
                        insort(s, v)
                    if len(h.arrived) > window:
                        if s is not None:
                            del s[bisect_left(s, h.arrived.pop(0))]
                        else:
                            h.arrived.pop(0)
                    t = times[i]
                    if t > h.last_t:
                        h.last_t = t
            for model, (lo, hi), newest in zip(models, bounds, max_of_parts(X["t"], bounds)):
                if hi > lo:
                    model._note_learned(hi - lo, newest)  # type: ignore[attr-defined]
        usual_a = np.array(usual)
        with np.errstate(divide="ignore", invalid="ignore"):
            times_usual = np.asarray(amounts, dtype=float) / usual_a
        return Scores(np.array(score), {"usual_amount": usual_a, "times_usual": times_usual,
                                        "robust_z": np.array(robust_z), "history": np.array(history, dtype=np.int64)})

    def _note_learned(self, n: int, newest: float) -> None:
        before = self._learned
        self._learned += n
        self._newest = max(self._newest, newest)
        if self._learned // _SWEEP_EVERY > before // _SWEEP_EVERY:
            horizon = self._newest - self.max_idle_days * 86400
            for k in [k for k, kh in self._keys.items() if kh.last_t < horizon]:
                del self._keys[k]

    def key_count(self) -> int:
        return len(self._keys)

    # --- state ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"keys": [[list(k) if isinstance(k, tuple) else k, list(h.arrived), h.last_t]
                         for k, h in self._keys.items()],
                "learned": self._learned, "newest": self._newest}

    def load_state(self, state: dict) -> None:
        self._keys = {}
        for k, values, last_t in state["keys"]:
            h = _History(values)
            h.last_t = last_t
            self._keys[tuple(k) if isinstance(k, list) else k] = h
        self._learned = state["learned"]
        self._newest = state["newest"]


def sorted_mad(s, med: float) -> float:
    """Median of ``|v - med|`` over a sorted list, in O(log n).

    The deviations below the median, read from the median outwards, and those
    above it are two sorted runs; the k-th smallest of two sorted runs is a
    binary search (no sorting of the deviations per event).

    >>> sorted_mad([1.0, 2.0, 4.0, 7.0, 11.0], 4.0)
    3.0
    """
    n = len(s)
    p = bisect.bisect_left(s, med)
    if n % 2:
        return _kth_deviation(s, med, p, n, n // 2)
    return 0.5 * (_kth_deviation(s, med, p, n, n // 2 - 1) + _kth_deviation(s, med, p, n, n // 2))


def _kth_deviation(s, med: float, p: int, n: int, k: int) -> float:
    """The k-th smallest (0-based) of |v - med|; ``p`` splits ``s`` at the median."""
    na, nb = p, n - p
    lo, hi = max(0, k + 1 - nb), min(k + 1, na)
    while lo < hi:
        i = (lo + hi) // 2  # take i from below, k + 1 - i from above
        j = k + 1 - i
        if j > 0 and i < na and s[p + j - 1] - med > med - s[p - 1 - i]:
            lo = i + 1
        else:
            hi = i
    j = k + 1 - lo
    return max(med - s[p - lo] if lo > 0 else -math.inf, s[p + j - 1] - med if j > 0 else -math.inf)


def _scores(rows: list[tuple[float, float, float, int]], amounts: np.ndarray) -> Scores:
    if not rows:
        return Scores(np.zeros(0), {})
    score, usual, z, n = (np.array(c) for c in zip(*rows))
    with np.errstate(divide="ignore", invalid="ignore"):
        times = np.asarray(amounts, dtype=float) / usual
    return Scores(score, {"usual_amount": usual, "times_usual": times, "robust_z": z, "history": n})
