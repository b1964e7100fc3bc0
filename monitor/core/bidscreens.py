"""Bid-rigging screens over the bids of one tender lot. Pure.

The screens of the cartel-detection literature (Imhof 2017; Huber & Imhof
2019, who classified Swiss road-construction tenders correctly in over 84%
of cases with them): collusion compresses the bids (a low coefficient of
variation, a high kurtosis) and sets the winner apart from the cover bids
(a large gap between the two lowest bids against the spread of the rest).
The formulas, with their sources, are in docs/bid-screens.md.

>>> s = screens([100.0, 102.0, 103.0, 105.0])
>>> round(s.cv, 4), round(s.diffp, 4), round(s.rd, 4)
(0.0203, 0.02, 1.3093)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["BidScreens", "SCREENS", "screen", "screens", "steps", "ties"]

SCREENS = ("cv", "diffp", "rd", "rdnor", "kurtosis", "skewness")
STEP_TOLERANCE = 0.01  # gaps within 1% of each other count as one step


@dataclass(frozen=True)
class BidScreens:
    n: int  # bids in the lot
    cv: float  # coefficient of variation: s / mean
    diffp: float  # (b2 - b1) / b1: the percentage difference between the two lowest bids
    rd: float  # (b2 - b1) / s of the losing bids: the relative distance
    rdnor: float  # (b2 - b1) / mean gap between adjacent bids: the normalised distance
    kurtosis: float  # sample excess kurtosis (n >= 4)
    skewness: float  # sample skewness (n >= 3)


def screens(bids: Sequence[float]) -> BidScreens:
    """The screens of one lot's bids (at least three positive bids; NaN where a
    screen needs more bids, or where the bids do not spread at all)."""
    b = sorted(float(x) for x in bids)
    n = len(b)
    if n < 3 or b[0] <= 0:
        raise ValueError("bid screens need at least three positive bids")
    mean = sum(b) / n
    s = _sd(b, mean)
    losing = b[1:]
    s_losing = _sd(losing, sum(losing) / len(losing))
    gap = b[1] - b[0]
    mean_gap = (b[-1] - b[0]) / (n - 1)  # the mean of the n-1 gaps between adjacent sorted bids
    nan = math.nan
    z = [(x - mean) / s for x in b] if s > 0 else []
    skew = n / ((n - 1) * (n - 2)) * sum(v ** 3 for v in z) if z else nan
    kurt = (n * (n + 1) / ((n - 1) * (n - 2) * (n - 3)) * sum(v ** 4 for v in z)
            - 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))) if z and n >= 4 else nan
    return BidScreens(n=n, cv=s / mean, diffp=gap / b[0], rd=gap / s_losing if s_losing > 0 else nan,
                      rdnor=gap / mean_gap if mean_gap > 0 else nan, kurtosis=kurt, skewness=skew)


def _sd(values: list[float], mean: float) -> float:
    """The sample standard deviation (n - 1)."""
    if len(values) < 2:
        return math.nan
    return math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))


def screen(name: str, bids: Sequence[float]) -> float:
    """One screen by name (a window aggregate of the rule language): NaN where
    the lot has too few bids for it.

    >>> round(screen("cv", [100.0, 102.0, 103.0, 105.0]), 4), screen("cv", [100.0, 101.0])
    (0.0203, nan)
    """
    if name == "ties":
        return float(ties(bids))
    if name == "steps":
        return float(steps(bids))
    values = [float(b) for b in bids if b == b]
    if len(values) < 3 or min(values) <= 0:
        return math.nan
    return float(getattr(screens(values), name))


def ties(bids: Sequence[float]) -> int:
    """How many bids equal another bid of the lot (identical bids: 围标 by copy).

    >>> ties([100.0, 100.0, 103.0, 103.0, 107.0]), ties([1.0, 2.0])
    (4, 0)
    """
    counts: dict[float, int] = {}
    for b in bids:
        if b == b:
            counts[b] = counts.get(b, 0) + 1
    return sum(c for c in counts.values() if c > 1)


def steps(bids: Sequence[float]) -> int:
    """The most bids that stand in an arithmetic sequence, one after another when
    sorted (prices set by one hand: 1,000,000, 1,020,000, 1,040,000, ...); gaps
    within ``STEP_TOLERANCE`` of each other are one step; identical bids are
    no step.

    >>> steps([1_000_000, 1_020_000, 1_040_000, 1_060_100, 1_300_000])
    4
    >>> steps([100.0, 104.0, 109.0, 111.0]), steps([5.0])
    (2, 1)
    """
    b = sorted(float(x) for x in bids if x == x)
    if len(b) < 2:
        return len(b)
    best = run = 1 if b[1] == b[0] else 2
    for i in range(2, len(b)):
        gap, before = b[i] - b[i - 1], b[i - 1] - b[i - 2]
        if gap > 0 and before > 0 and abs(gap - before) <= STEP_TOLERANCE * max(gap, before):
            run += 1
        else:
            run = 2 if gap > 0 else 1
        best = max(best, run)
    return best
