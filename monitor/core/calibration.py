"""Calibrated detector alerts: a detector alerts on how rare a score is, not on the score.

A raw anomaly score means different things on different streams: on a stream
ten times denser, Half-Space Trees give ten times more payments above 0.95.
So each calibrated detector keeps, per org, the distribution of the scores it
has given so far, and alerts on an event whose score is rarer than the
analyst's rate ``alpha`` ("about 1 in 2,000 payments"): its conformal p-value

    p = (1 + earlier scores at least as high) / (1 + earlier scores)

is at most ``alpha``. On a stationary stream P(p <= alpha) <= alpha exactly
(scores exchangeable), whatever the density; an org's first alert can come
only once it has about 1/alpha scores (the warm-up), and a daily cap per org
bounds a burst.

The distribution is a histogram of ``1 - score`` over logarithmic buckets
(DDSketch's mapping, Masson et al., VLDB 2019): fine near a score of 1, where
alerts are decided, coarse in the bulk; a score shares its bucket's count, so
the p-value errs on the quiet side. Every org's histogram is a row of one
array, so a batch of any number of orgs is calibrated in one call, each row
exactly as if the events had come one at a time (``calibrate_loop``).

>>> tails = OrgTails()
>>> rng = np.random.default_rng(1)
>>> orgs = np.array(["A"] * 5000, dtype=object)
>>> p, alert = tails.calibrate(orgs, rng.random(5000), np.zeros(5000), alpha=0.01, warmup=100)
>>> bool(0.002 < alert.mean() < 0.015), int(tails.state_of("A")["total"])
(True, 5000)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["BUCKETS", "OrgTails", "TailRecord", "bucket_of", "calibrate_loop", "parse_rate"]

BUCKETS = 256
SMALLEST_GAP = 1e-6  # 1 - score below this shares the top bucket
_LOG_GAMMA = math.log(1 / SMALLEST_GAP) / (BUCKETS - 1)  # each bucket ~5.6% of 1 - score
# the lowest score of each bucket (bucket 0 from 0)
_LOWEST_SCORE = np.array([1.0 - math.exp(-k * _LOG_GAMMA) if k > 0 else 0.0 for k in range(BUCKETS)])
DAY = 86_400.0
_CST = 8 * 3600.0  # a cap's day is a calendar day in China Standard Time


def bucket_of(scores: np.ndarray) -> np.ndarray:
    """Bucket of each score in [0, 1]: higher score, higher bucket (0 .. BUCKETS-1).

    >>> bucket_of(np.array([0.0, 0.5, 0.99, 1.0])).tolist()
    [0, 12, 85, 255]
    """
    gap = 1.0 - np.clip(np.nan_to_num(np.asarray(scores, float), nan=0.0), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        k = np.floor(-np.log(np.maximum(gap, SMALLEST_GAP / 2)) / _LOG_GAMMA)
    return np.minimum(k, BUCKETS - 1).astype(np.int64)


def parse_rate(text: Any) -> float | None:
    """``alpha`` from how an analyst writes it: "1 in 2,000", or a number in (0, 1).

    >>> parse_rate("1 in 2,000"), parse_rate(0.001), parse_rate("often")
    (0.0005, 0.001, None)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text) if 0 < text < 1 else None
    if not isinstance(text, str):
        return None
    head, sep, tail = text.strip().partition(" in ")
    try:
        one, many = float(head), float(tail.replace(",", "").replace("_", "").strip())
    except ValueError:
        return None
    return one / many if sep and one > 0 and many > one else None


class OrgTails:
    """Per org: the histogram of its scores so far, and its daily alert count."""

    def __init__(self) -> None:
        self.rows: dict[Any, int] = {}
        self.counts = np.zeros((0, BUCKETS), np.int64)
        self.totals = np.zeros(0, np.int64)
        self.cap_day = np.zeros(0, np.int64)  # the day of the org's last would-be alert
        self.cap_count = np.zeros(0, np.int64)  # would-be alerts on that day

    def __len__(self) -> int:
        return len(self.rows)

    def _rows_of(self, orgs: np.ndarray) -> np.ndarray:
        """Each org's row, adding rows for new orgs (one dict lookup per distinct org)."""
        distinct, inverse = np.unique(orgs.astype(str), return_inverse=True)
        found = np.array([self.rows.setdefault(o, len(self.rows)) for o in distinct.tolist()], np.int64)
        grow = len(self.rows) - len(self.totals)
        if grow > 0:
            size = max(len(self.rows), 2 * len(self.totals))
            more = size - len(self.totals)
            self.counts = np.concatenate([self.counts, np.zeros((more, BUCKETS), np.int64)])
            self.totals, self.cap_day, self.cap_count = (np.concatenate([a, np.zeros(more, np.int64)])
                                                         for a in (self.totals, self.cap_day, self.cap_count))
        return found[inverse.reshape(-1)]

    def floor(self, org: Any, alpha: float, warmup: int, coming: int) -> float:
        """The lowest score that could alert among the org's next ``coming`` events
        (1.01 when none can): what a model needs to explain.

        >>> OrgTails().floor("A", 0.01, 100, 50)
        1.01
        """
        return float(self.floors([org], alpha, warmup, np.array([coming]))[0])

    def floors(self, orgs: list, alpha: float, warmup: int, coming: np.ndarray) -> np.ndarray:
        """``floor`` of each org, all at once.

        >>> tails = OrgTails()
        >>> _ = tails.calibrate(np.array(["A"] * 400, dtype=object), np.linspace(0, 0.9, 400), np.zeros(400), 0.01, 100)
        >>> [round(f, 3) for f in tails.floors(["A", "B"], 0.01, 100, np.array([1, 50])).tolist()]
        [0.897, 1.01]
        """
        found = [self.rows.get(str(org)) for org in orgs]
        known = np.array([row is not None for row in found], dtype=bool)
        rows = np.array([row if row is not None else 0 for row in found], dtype=np.int64)
        seen = np.where(known, self.totals[rows] if len(self.totals) else 0, 0)
        coming = np.asarray(coming, dtype=np.int64)
        out = np.zeros(len(orgs))
        out[(seen + coming - 1 < warmup) | ((seen + coming) * alpha < 1 - 1e-9)] = 1.01
        asked = np.flatnonzero(known & (out < 1.01))
        if len(asked):
            above = np.cumsum(self.counts[rows[asked], ::-1], axis=1)[:, ::-1]  # scores in each bucket or higher
            ok = (above + 1) <= alpha * (seen[asked] + coming[asked] + 1)[:, None] + 1e-9
            first = np.argmax(ok, axis=1)
            out[asked] = np.where(ok.any(axis=1), _LOWEST_SCORE[first], 0.0)
        return out

    def calibrate(self, orgs: np.ndarray, scores: np.ndarray, times: np.ndarray, alpha: float, warmup: int,
                  daily_cap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each event's p-value and whether it alerts, in order; then the scores are learned.

        A p-value is exact where it is ``alpha`` or less; elsewhere it is a lower
        bound above ``alpha``. An event alerts when its org has ``warmup`` scores
        before it, ``p <= alpha``, and (with ``daily_cap``) fewer than that many
        alerts came that day."""
        n = len(scores)
        if n == 0:
            return np.zeros(0), np.zeros(0, bool)
        rows = self._rows_of(np.asarray(orgs, dtype=object))
        buckets = bucket_of(scores)
        order = np.argsort(rows, kind="stable")  # by org, in stream order within each
        sorted_rows = rows[order]
        starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
        lengths = np.diff(np.r_[starts, n])
        earlier = np.empty(n, np.int64)  # rows of the same org earlier in this batch
        earlier[order] = np.arange(n) - np.repeat(starts, lengths)
        in_batch = np.empty(n, np.int64)
        in_batch[order] = np.repeat(lengths, lengths)
        present = np.unique(rows)
        suffix = np.cumsum(self.counts[present, ::-1], axis=1)[:, ::-1]  # per org in the batch
        local = np.searchsorted(present, rows)
        above_before = suffix[local, buckets]  # histogram counts at or above, at the batch's start
        seen = self.totals[rows]
        # A lower bound of p (no earlier same-batch score counted, the org's last row's
        # denominator): an event above it cannot alert, and every event of its org
        # scoring at least as high is below it too, so the exact count needs only these.
        lower = (above_before + 1) / (seen + in_batch + 1)
        may = (lower <= alpha + 1e-12) & (seen + in_batch - 1 >= warmup)
        above = above_before.copy()
        picked = np.flatnonzero(may[order])
        if len(picked):
            positions = order[picked]  # by org, in stream order
            low = int(buckets[positions].min())
            width = BUCKETS - low
            hits = np.zeros((len(positions), width), np.int64)
            hits[np.arange(len(positions)), buckets[positions] - low] = 1
            before = np.cumsum(hits, axis=0) - hits  # earlier candidates, by bucket
            org_of = rows[positions]
            first = np.flatnonzero(np.r_[True, org_of[1:] != org_of[:-1]])
            before -= np.repeat(before[first], np.diff(np.r_[first, len(positions)]), axis=0)
            at_or_above = np.cumsum(before[:, ::-1], axis=1)[:, ::-1]
            above[positions] += at_or_above[np.arange(len(positions)), buckets[positions] - low]
        p = np.where(may, (above + 1) / (seen + earlier + 1), lower)
        alert = may & (seen + earlier >= warmup) & (p <= alpha + 1e-12)
        if daily_cap is not None:
            alert &= self._under_cap(rows, times, alert, daily_cap)
        np.add.at(self.counts, (rows, buckets), np.int64(1))  # of the counts' type: numpy's fast path
        self.totals += np.bincount(rows, minlength=len(self.totals))
        return p, alert

    def _under_cap(self, rows: np.ndarray, times: np.ndarray, alert: np.ndarray, cap: int) -> np.ndarray:
        """Which alerts stay under the daily cap (counted as they would have come, one at a time)."""
        keep = np.ones(len(rows), bool)
        positions = np.flatnonzero(alert)
        if not len(positions):
            return keep
        positions = positions[np.argsort(rows[positions], kind="stable")]
        org = rows[positions]
        day = np.floor((np.asarray(times, float)[positions] + _CST) / DAY).astype(np.int64)
        run_start = np.r_[True, (org[1:] != org[:-1]) | (day[1:] != day[:-1])]
        first_of_org = np.r_[True, org[1:] != org[:-1]]
        starts = np.flatnonzero(run_start)
        lengths = np.diff(np.r_[starts, len(positions)])
        rank = np.arange(len(positions)) - np.repeat(starts, lengths)
        carried = np.where(first_of_org & (self.cap_day[org] == day), self.cap_count[org], 0)
        prior = np.repeat(carried[starts], lengths)  # a run continues the stored day only as its org's first
        keep[positions] = rank + prior < cap
        last = np.r_[starts[1:] - 1, len(positions) - 1][np.r_[first_of_org[starts][1:], True]]
        self.cap_day[org[last]] = day[last]
        self.cap_count[org[last]] = (rank + prior)[last] + 1
        return keep

    # --- state: one plain record per org (what a changelog keeps per org) ----------------
    def state_of(self, org: Any) -> dict[str, Any]:
        """The org's histogram (non-empty buckets), total and daily count, as plain data."""
        row = self.rows[str(org)]
        nonzero = np.flatnonzero(self.counts[row])
        return {"buckets": nonzero.tolist(), "counts": self.counts[row, nonzero].tolist(),
                "total": int(self.totals[row]), "cap_day": int(self.cap_day[row]), "cap_count": int(self.cap_count[row])}

    def forget(self, org: Any) -> None:
        """Empty the org's histogram and daily count."""
        self.load(org, {"buckets": [], "counts": [], "total": 0, "cap_day": 0, "cap_count": 0})

    def load(self, org: Any, plain: dict[str, Any]) -> None:
        """Restore what ``state_of`` gave."""
        row = int(self._rows_of(np.array([str(org)], dtype=object))[0])
        self.counts[row] = 0
        self.counts[row, plain["buckets"]] = plain["counts"]
        self.totals[row] = plain["total"]
        self.cap_day[row], self.cap_count[row] = plain["cap_day"], plain["cap_count"]


class TailRecord:
    """An org's entry in a detector's state store: its plain record is read from the
    live ``OrgTails`` when the store is written (a checkpoint), not at every batch."""

    __slots__ = ("tails", "org")

    def __init__(self, tails: OrgTails, org: Any):
        self.tails, self.org = tails, org

    def state(self) -> dict[str, Any]:
        return self.tails.state_of(self.org)


def calibrate_loop(tails: OrgTails, orgs, scores, times, alpha: float, warmup: int,
                   daily_cap: int | None = None) -> tuple[list[float], list[bool]]:
    """``OrgTails.calibrate`` one event at a time: what the batch form must equal (tests)."""
    ps, alerts = [], []
    for org, score, t in zip(orgs, scores, times):
        p, alert = tails.calibrate(np.array([org], dtype=object), np.array([score]), np.array([t]),
                                   alpha, warmup, daily_cap)
        ps.append(float(p[0]))
        alerts.append(bool(alert[0]))
    return ps, alerts
