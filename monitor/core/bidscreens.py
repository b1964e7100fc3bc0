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

__all__ = ["BidScreens", "screens"]


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
