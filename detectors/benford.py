"""Benford first-digit test per key and month (Nigrini's mean absolute deviation).

Amounts that people make up do not follow Benford's law; amounts that pile
up as real business does, do. Per key (an org, say) and calendar month the
first-digit counts are kept; the month's MAD — the mean of
``|observed share - expected share|`` over the digits 1–9 — is read against
Nigrini's conformity bands for first digits:

=============================  ===============
MAD                            conformity
=============================  ===============
below 0.006                    close
0.006 – 0.012                  acceptable
0.012 – 0.015                  marginal
above 0.015                    nonconformity
=============================  ===============

The bands hold for large samples; with a few hundred amounts chance alone
gives a MAD near 0.012. So the score reads the *excess* MAD — the MAD less
what chance gives for that many amounts, ``mean_d sqrt(2 p_d (1 - p_d) / (pi N))``
— and is 0.5 when the excess reaches ``max_excess_mad``. An event is scored
when its month has at least ``min_count`` amounts and its own first digit is
over-represented there (Nigrini's z-statistic for the digit above
``z_digit``); other events score 0 — they are what the law expects. Amounts
below 10 are left out (their first digit carries little).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> real = 10 ** rng.uniform(2, 6, 2000)             # log-uniform over whole decades: Benford
>>> made_up = rng.choice([50000.0, 60000.0, 80000.0], 400)
>>> det = Benford(min_count=300)
>>> t = np.full(2000, 1.77e9)
>>> s = det.process_many({"key": np.array(["ORG01"] * 2000, dtype=object), "amount": real, "t": t})
>>> float(s.scores.max()) < 0.5      # conforming: nothing reaches the nonconformity band
True
>>> s = det.process_many({"key": np.array(["ORG01"] * 400, dtype=object), "amount": made_up, "t": t[:400]})
>>> float(s.scores[-1]) > 0.5, s.row(399)["band"]
(True, 'nonconformity')

References
----------
Nigrini, M. (2012). Benford's Law: Applications for Forensic Accounting,
Auditing, and Fraud Detection. Wiley. Table 7.1.
"""

from __future__ import annotations

import numpy as np

from detectors.base import Bounds, Columns, Detector, Scores, squash

__all__ = ["BANDS", "Benford", "EXPECTED", "expected_mad", "first_digits"]

EXPECTED = np.log10(1 + 1 / np.arange(1, 10))  # P(first digit = d), d = 1..9
BANDS = ((0.006, "close"), (0.012, "acceptable"), (0.015, "marginal"), (np.inf, "nonconformity"))


def first_digits(amounts: np.ndarray) -> np.ndarray:
    """First significant digit (1–9) of each amount; 0 where it is below 10 or not a number.

    >>> first_digits(np.array([1234.5, 99.0, 7.0, 1000.0, 0.0, np.nan])).tolist()
    [1, 9, 0, 1, 0, 0]
    """
    a = np.asarray(amounts, dtype=float)
    ok = np.isfinite(a) & (a >= 10)
    out = np.zeros(len(a), dtype=np.int64)
    if ok.any():
        v = a[ok]
        scale = 10.0 ** np.floor(np.log10(v))
        d = np.floor(v / scale)
        # log10 may round across a power of ten (log10(1000) -> 2.9999…): fix the scale
        scale = np.where(d >= 10, scale * 10, np.where(d < 1, scale / 10, scale))
        out[ok] = np.floor(v / scale * (1 + 1e-12)).astype(np.int64)
    return out


def expected_mad(n: np.ndarray) -> np.ndarray:
    """The MAD that chance alone gives for ``n`` Benford amounts.

    >>> [round(float(v), 4) for v in expected_mad(np.array([300, 3000]))]
    [0.0136, 0.0043]
    """
    n = np.asarray(n, dtype=float)
    spread = np.sqrt(2 * EXPECTED * (1 - EXPECTED) / np.pi).mean()
    with np.errstate(divide="ignore"):
        return np.where(n > 0, spread / np.sqrt(np.maximum(n, 1)), np.nan)


def first_seen_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number equal values 0, 1, … in order of first appearance: (each value's number,
    the position where each number first appears).

    >>> codes, first = first_seen_codes(np.array([7, 3, 7, 9, 3]))
    >>> codes.tolist(), first.tolist()
    ([0, 1, 0, 2, 1], [0, 1, 3])
    """
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    by_first = np.argsort(first)
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(first))
    return rank[inverse.ravel()], first[by_first]


def band(mad: float) -> str:
    return next(name for limit, name in BANDS if mad < limit)


def bands(mads: np.ndarray) -> np.ndarray:
    """``band`` of each MAD ("" where there is none)."""
    names = np.array([""] + [name for _, name in BANDS], dtype=object)
    limits = np.array([limit for limit, _ in BANDS])
    index = np.where(np.isfinite(mads), np.searchsorted(limits, np.nan_to_num(mads), side="right") + 1, 0)
    return names[index]


class Benford(Detector):
    """First-digit conformity per key and month.

    Parameters
    ----------
    min_count
        Amounts a key-month needs before its events are scored (Nigrini
        suggests a few hundred at least; with fewer, chance alone breaks the bands).
    z_digit
        How far above its expected share a digit must be (z-statistic) for
        its events to carry the month's score.
    max_excess_mad
        The MAD beyond chance at which the score is 0.5.
    utc_offset_hours
        Months are counted in this local time.
    keep_months
        Months older than this (before the newest seen) are forgotten.
    """

    def __init__(self, min_count: int = 300, z_digit: float = 1.96, max_excess_mad: float = 0.01,
                 utc_offset_hours: float = 8.0, keep_months: int = 3):
        self.min_count = min_count
        self.z_digit = z_digit
        self.max_excess_mad = max_excess_mad
        self.utc_offset_hours = utc_offset_hours
        self.keep_months = keep_months
        self._counts: dict[tuple, np.ndarray] = {}  # (key, "YYYY-MM") -> counts of digits 1..9

    def _month_index(self, t: np.ndarray) -> np.ndarray:
        """Each time's calendar month in local time, as months since 1970-01."""
        days = (np.asarray(t, dtype=float) + self.utc_offset_hours * 3600) // 86400
        return days.astype(np.int64).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)

    def _grouped(self, X: Columns, owner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[tuple], np.ndarray]:
        """(each row's first digit, each row's month "YYYY-MM", the groups, each row's group).
        A group is a key-month ``(key, month)`` — with ``owner`` (pooled models) ``((owner, key), month)`` —
        numbered in order of first appearance. Only the keys go through Python, a dict look-up a row."""
        digits = first_digits(X["amount"])
        keys = X["key"].tolist()
        codes: dict = {}
        key_code = np.fromiter((codes.setdefault(k, len(codes)) for k in keys), np.int64, len(keys))
        months, month_code = np.unique(self._month_index(X["t"]), return_inverse=True)
        month_code = month_code.ravel()
        labels = np.datetime_as_string(months.astype("datetime64[M]")).astype(object)
        combined = key_code if owner is None else owner * max(len(codes), 1) + key_code
        group, first = first_seen_codes(combined * max(len(months), 1) + month_code)
        period = labels[month_code]
        if owner is None:
            names = [(keys[i], period[i]) for i in first.tolist()]
        else:
            names = [((int(owner[i]), keys[i]), period[i]) for i in first.tolist()]
        return digits, period, names, group

    def _score(self, X: Columns, learn: bool) -> Scores:
        none = np.zeros(9)
        scores, totals = self._score_groups(X, lambda names: [self._counts.get(k, none) for k in names], learn)
        if learn:
            self._counts.update(totals)
            self._forget_old()
        return scores

    def _score_groups(self, X: Columns, priors_of, learn: bool,
                      owner: np.ndarray | None = None) -> tuple[Scores, dict[tuple, np.ndarray]]:
        """Scores of ``X`` given each key-month's counts so far (``priors_of(groups)``),
        and the key-months' counts after it (when ``learn``); see ``_grouped`` for ``owner``."""
        digits, period, names, group = self._grouped(X, owner)
        size = len(digits)
        # All key-months at once (a batch of a few events spans many): rows in
        # group order, each row's counts = its group's prior + the group's rows
        # before it (when learning).
        order = np.argsort(group, kind="stable")
        sizes = np.bincount(group, minlength=len(names))
        group = group[order]
        priors = np.array(priors_of(names)).reshape(len(names), 9)
        d = digits[order]
        valid = d > 0
        onehot = np.zeros((size, 9))
        onehot[np.flatnonzero(valid), d[valid] - 1] = 1
        totals = priors
        if learn and size:
            running = np.cumsum(onehot, axis=0)
            starts = np.cumsum(sizes) - sizes
            at_start = running[starts] - onehot[starts]  # the batch's counts before each group's first row
            before = priors[group] + running - onehot - at_start[group]
            totals = priors + running[starts + sizes - 1] - at_start
        else:
            before = priors[group]
        n = before.sum(axis=1)
        p = EXPECTED[np.maximum(d - 1, 0)]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = before / n[:, None]
            mad = np.abs(share - EXPECTED).mean(axis=1)
            obs = share[np.arange(size), np.maximum(d - 1, 0)]
            # Nigrini's z for one digit, with the continuity correction
            z = (np.abs(obs - p) - 1 / (2 * n)) / np.sqrt(p * (1 - p) / n)
        z = np.where(valid & (obs > p), z, 0.0)
        excess = np.nan_to_num(mad - expected_mad(n))
        scores, mads, zs, counts = np.zeros(size), np.full(size, np.nan), np.zeros(size), np.zeros(size, dtype=np.int64)
        scores[order] = np.where((n >= self.min_count) & (z > self.z_digit), squash(excess / self.max_excess_mad), 0.0)
        mads[order], zs[order], counts[order] = mad, z, n
        expected = EXPECTED[np.maximum(digits - 1, 0)]
        return Scores(scores, {
            "period": period, "digit": digits, "mad": mads, "digit_z": zs,
            "expected_mad": expected_mad(counts),
            "count": counts, "expected_share": expected,
            "band": bands(mads),
        }), dict(zip(names, totals)) if learn else {}

    def _forget_old(self) -> None:
        months = sorted({m for _, m in self._counts})
        if len(months) > self.keep_months:
            keep = set(months[-self.keep_months:])
            self._counts = {k: v for k, v in self._counts.items() if k[1] in keep}

    # --- batches --------------------------------------------------------------------
    def score_many(self, X: Columns) -> Scores:
        return self._score(X, learn=False)

    def learn_many(self, X: Columns) -> None:
        digits, _, names, group = self._grouped(X)
        counts = np.zeros((len(names), 10))
        np.add.at(counts, (group, digits), 1)
        for name, c in zip(names, counts[:, 1:]):
            self._counts[name] = self._counts.get(name, np.zeros(9)) + c
        self._forget_old()

    def process_many(self, X: Columns) -> Scores:
        return self._score(X, learn=True)

    @classmethod
    def process_pooled(cls, models: list[Benford], X: Columns, bounds: Bounds) -> Scores:  # type: ignore[override]
        """All the orgs' models in one vectorised pass (a small batch touches many
        orgs with a few amounts each; numpy's cost per call dominated). The
        models share their settings (one detector spec) but not their counts."""
        if len(models) < 2:
            return super().process_pooled(models, X, bounds)
        first = models[0]
        owner = np.repeat(np.arange(len(models)), [b - a for a, b in bounds])
        pooled = {"key": X["key"], "amount": np.asarray(X["amount"], dtype=float), "t": np.asarray(X["t"], dtype=float)}

        def priors_of(names: list[tuple]) -> list[np.ndarray]:
            none = np.zeros(9)
            return [models[i]._counts.get((key, month), none) for (i, key), month in names]

        scores, totals = first._score_groups(pooled, priors_of, learn=True, owner=owner)
        new_month: set[int] = set()  # models given a key-month they did not hold: only they may have months to forget
        for ((i, key), month), counts in totals.items():
            held = models[i]._counts
            if (key, month) not in held:
                new_month.add(i)
            held[key, month] = counts
        for i in new_month:
            models[i]._forget_old()
        return scores

    def month_mad(self) -> dict[tuple, tuple[float, int]]:
        """(MAD, count) of every key-month held."""
        out = {}
        for k, c in self._counts.items():
            n = c.sum()
            out[k] = (float(np.abs(c / n - EXPECTED).mean()) if n else float("nan"), int(n))
        return out

    def key_count(self) -> int:
        return len(self._counts)

    # --- state ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"counts": [[list(k[0]) if isinstance(k[0], tuple) else k[0], k[1], c.tolist()]
                           for k, c in self._counts.items()]}

    def load_state(self, state: dict) -> None:
        self._counts = {(tuple(k) if isinstance(k, list) else k, m): np.array(c, dtype=float)
                        for k, m, c in state["counts"]}
