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

import weakref

import numpy as np

from detectors.base import Bounds, Columns, Detector, Scores, squash

__all__ = ["BANDS", "Benford", "CountBank", "EXPECTED", "expected_mad", "first_digits"]

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


def band(mad: float) -> str:
    return next(name for limit, name in BANDS if mad < limit)


def bands(mads: np.ndarray) -> np.ndarray:
    """``band`` of each MAD ("" where there is none)."""
    names = np.array([""] + [name for _, name in BANDS], dtype=object)
    limits = np.array([limit for limit, _ in BANDS])
    index = np.where(np.isfinite(mads), np.searchsorted(limits, np.nan_to_num(mads), side="right") + 1, 0)
    return names[index]


# A key-month's code: the model's number, the key's number and the month (months since
# 1970-01 plus MONTH_OFFSET) in one int64, so that one model's rows sort together.
KEY_SHIFT, OWNER_SHIFT = 16, 43
MONTH_OFFSET = 1 << 15
MAX_KEYS, MAX_OWNERS = 1 << (OWNER_SHIFT - KEY_SHIFT), 1 << (63 - OWNER_SHIFT)


class CountBank:
    """The digit counts of every Benford model's key-months, side by side: one row
    each, found by its int64 code (``np.searchsorted`` over the sorted codes), so
    that a pooled call reads and writes the counts of thousands of orgs' models
    with a few numpy calls instead of dict look-ups per model and key-month.

    A model joins the bank when it is made (``join``) and is given a number; its
    rows go when it is garbage (``weakref.finalize``), at the next write. Keys
    (the ``by`` values) are numbered once for all models.

    >>> class Model: ...
    >>> bank, model = CountBank(), Model()
    >>> owner = bank.join(model)
    >>> code = bank.code(np.array([owner]), bank.key_numbers_of([("ORG1",)]), np.array([676]))  # 2026-05
    >>> bank.write(code, np.ones((1, 9)), bank.rows(code))
    >>> bank.rows(code).tolist(), bank.key_of(int(code[0])), bank.month_of(code).tolist()
    ([0], ('ORG1',), [676])
    >>> del model; bank.write(code[:0], np.zeros((0, 9)), code[:0]); len(bank.codes)  # its rows go with it
    0
    """

    def __init__(self) -> None:
        self.codes = np.zeros(0, np.int64)  # sorted
        self.counts = np.zeros((0, 9))  # row i: the counts of codes[i]
        self.key_number: dict = {}
        self.keys: list = []  # number -> key
        self._owners = 0
        self._free: list[int] = []
        self._gone: list[int] = []  # models garbage-collected: their rows are dropped at the next write

    # --- owners and keys --------------------------------------------------------------
    def join(self, model: object) -> int:
        if self._free:
            owner = self._free.pop()
        else:
            owner = self._owners
            if owner >= MAX_OWNERS:
                raise OverflowError(f"more than {MAX_OWNERS:,} Benford models alive at once")
            self._owners += 1
        weakref.finalize(model, self._gone.append, owner)
        return owner

    def key_numbers_of(self, keys: list) -> np.ndarray:
        numbers = self.key_number
        before = len(numbers)
        found = np.fromiter((numbers.setdefault(k, len(numbers)) for k in keys), np.int64, len(keys))
        if len(numbers) > before:
            if len(numbers) > MAX_KEYS:
                raise OverflowError(f"more than {MAX_KEYS:,} Benford keys")
            self.keys = list(numbers)
        return found

    @staticmethod
    def code(owners: np.ndarray, keys: np.ndarray, months: np.ndarray) -> np.ndarray:
        return (owners << OWNER_SHIFT) | (keys << KEY_SHIFT) | (months + MONTH_OFFSET)

    @staticmethod
    def owner_of(codes: np.ndarray) -> np.ndarray:
        return codes >> OWNER_SHIFT

    @staticmethod
    def month_of(codes: np.ndarray) -> np.ndarray:
        return (codes & ((1 << KEY_SHIFT) - 1)) - MONTH_OFFSET

    def key_of(self, code: int):
        return self.keys[(code >> KEY_SHIFT) & (MAX_KEYS - 1)]

    # --- rows ----------------------------------------------------------------------------
    def rows(self, codes: np.ndarray) -> np.ndarray:
        """The row of each code, -1 where there is none."""
        at = np.searchsorted(self.codes, codes)
        found = at < len(self.codes)
        found[found] = self.codes[at[found]] == codes[found]
        return np.where(found, at, -1)

    def rows_of(self, owner: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.codes, [owner << OWNER_SHIFT, (owner + 1) << OWNER_SHIFT])
        return np.arange(lo, hi)

    def priors(self, rows: np.ndarray) -> np.ndarray:
        """The counts at ``rows``; zeros where a row is -1 (a key-month not held)."""
        if not len(self.counts):
            return np.zeros((len(rows), 9))
        return np.where((rows >= 0)[:, None], self.counts[np.maximum(rows, 0)], 0.0)

    def write(self, codes: np.ndarray, counts: np.ndarray, rows: np.ndarray) -> None:
        """Set the counts of ``codes`` (``rows``: their rows, -1 for new ones)."""
        held = rows >= 0
        self.counts[rows[held]] = counts[held]
        gone = self._take_gone()
        if held.all() and not gone:
            return
        keep = ~np.isin(self.owner_of(self.codes), gone) if gone else slice(None)
        codes_all = np.concatenate([self.codes[keep], codes[~held]])
        counts_all = np.concatenate([self.counts[keep], counts[~held]])
        order = np.argsort(codes_all, kind="stable")
        self.codes, self.counts = codes_all[order], counts_all[order]
        self._free.extend(gone)

    def _take_gone(self) -> list[int]:
        gone = self._gone[:]  # the list is never replaced: finalizers hold its append
        del self._gone[:len(gone)]
        return gone

    def drop(self, rows: np.ndarray) -> None:
        keep = np.ones(len(self.codes), dtype=bool)
        keep[rows] = False
        self.codes, self.counts = self.codes[keep], self.counts[keep]

    def keep_newest_months(self, owners: np.ndarray, keep_months: int) -> None:
        """Forget each of these owners' key-months older than its newest ``keep_months`` months."""
        mine = np.flatnonzero(np.isin(self.owner_of(self.codes), owners))
        if not len(mine):
            return
        codes = self.codes[mine]
        owner_month = (self.owner_of(codes) << KEY_SHIFT) | (codes & ((1 << KEY_SHIFT) - 1))
        distinct, which = np.unique(owner_month, return_inverse=True)
        owner = distinct >> KEY_SHIFT
        newer = np.searchsorted(owner, owner, side="right") - 1 - np.arange(len(distinct))  # the owner's months after it
        old = (newer >= keep_months)[which.ravel()]
        if old.any():
            self.drop(mine[old])


_BANK = CountBank()


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
        self._owner = _BANK.join(self)  # its counts are rows of the bank: (key, month) -> counts of digits 1..9

    def __getstate__(self) -> dict:
        return {"params": self.params(), "state": self.state()}

    def __setstate__(self, pickled: dict) -> None:
        self.__init__(**pickled["params"])
        self.load_state(pickled["state"])

    def _month_index(self, t: np.ndarray) -> np.ndarray:
        """Each time's calendar month in local time, as months since 1970-01."""
        days = (np.asarray(t, dtype=float) + self.utc_offset_hours * 3600) // 86400
        return days.astype(np.int64).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)

    def _score_rows(self, X: Columns, owners: np.ndarray, learn: bool) -> Scores:
        """Each row scored against its key-month's counts before it (the models'
        counts so far, then the batch's rows before it), and, when ``learn``, the
        counts written back; ``owners``: each row's model number."""
        digits = first_digits(X["amount"])
        months = self._month_index(X["t"])
        codes = _BANK.code(owners, _BANK.key_numbers_of(X["key"].tolist()), months)
        names, group = np.unique(codes, return_inverse=True)
        group = group.ravel()
        size = len(digits)
        # All key-months at once (a batch of a few events spans many): rows in
        # group order, each row's counts = its group's prior + the group's rows
        # before it (when learning).
        order = np.argsort(group, kind="stable")
        sizes = np.bincount(group, minlength=len(names))
        group = group[order]
        rows = _BANK.rows(names)
        priors = _BANK.priors(rows)
        d = digits[order]
        valid = d > 0
        onehot = np.zeros((size, 9))
        onehot[np.flatnonzero(valid), d[valid] - 1] = 1
        if learn and size:
            running = np.cumsum(onehot, axis=0)
            starts = np.cumsum(sizes) - sizes
            at_start = running[starts] - onehot[starts]  # the batch's counts before each group's first row
            before = priors[group] + running - onehot - at_start[group]
            _BANK.write(names, priors + running[starts + sizes - 1] - at_start, rows)
            if (rows < 0).any():  # a new key-month: older months may go
                _BANK.keep_newest_months(np.unique(_BANK.owner_of(names[rows < 0])), self.keep_months)
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
            "period": _month_labels(months), "digit": digits, "mad": mads, "digit_z": zs,
            "expected_mad": expected_mad(counts),
            "count": counts, "expected_share": expected,
            "band": bands(mads),
        })

    # --- batches --------------------------------------------------------------------
    def _mine(self, X: Columns) -> np.ndarray:
        return np.full(len(X["amount"]), self._owner, dtype=np.int64)

    def score_many(self, X: Columns) -> Scores:
        return self._score_rows(X, self._mine(X), learn=False)

    def learn_many(self, X: Columns) -> None:
        self._score_rows(X, self._mine(X), learn=True)

    def process_many(self, X: Columns) -> Scores:
        return self._score_rows(X, self._mine(X), learn=True)

    @classmethod
    def process_pooled(cls, models: list[Benford], X: Columns, bounds: Bounds) -> Scores:  # type: ignore[override]
        """All the orgs' models in one vectorised pass (a small batch touches many
        orgs with a few amounts each): their counts are rows of one bank. The
        models share their settings (one detector spec) but not their counts."""
        if not models:
            return Scores(np.zeros(0))
        edges = np.array(bounds, dtype=np.int64).reshape(-1, 2)
        owners = np.repeat(np.fromiter((m._owner for m in models), np.int64, len(models)), edges[:, 1] - edges[:, 0])
        pooled = {"key": X["key"], "amount": np.asarray(X["amount"], dtype=float), "t": np.asarray(X["t"], dtype=float)}
        return models[0]._score_rows(pooled, owners, learn=True)

    def _held(self) -> list[tuple]:
        """(key, month label, counts) of every key-month held."""
        rows = _BANK.rows_of(self._owner)
        codes = _BANK.codes[rows]
        labels = _month_labels(_BANK.month_of(codes))
        return [(_BANK.key_of(int(c)), m, counts) for c, m, counts in zip(codes.tolist(), labels.tolist(), _BANK.counts[rows])]

    def month_mad(self) -> dict[tuple, tuple[float, int]]:
        """(MAD, count) of every key-month held."""
        out = {}
        for key, month, c in self._held():
            n = c.sum()
            out[key, month] = (float(np.abs(c / n - EXPECTED).mean()) if n else float("nan"), int(n))
        return out

    def key_count(self) -> int:
        return len(_BANK.rows_of(self._owner))

    # --- state ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"counts": [[list(k) if isinstance(k, tuple) else k, m, c.tolist()] for k, m, c in self._held()]}

    def load_state(self, state: dict) -> None:
        _BANK.drop(_BANK.rows_of(self._owner))
        held = state["counts"]
        if not held:
            return
        keys = [tuple(k) if isinstance(k, list) else k for k, _, _ in held]
        months = np.array([m for _, m, _ in held], dtype="datetime64[M]").astype(np.int64)
        codes = _BANK.code(np.full(len(held), self._owner, dtype=np.int64), _BANK.key_numbers_of(keys), months)
        _BANK.write(codes, np.array([c for _, _, c in held], dtype=float).reshape(len(held), 9), _BANK.rows(codes))


def _month_labels(months: np.ndarray) -> np.ndarray:
    """"YYYY-MM" of each month index (months since 1970-01), as objects."""
    distinct, which = np.unique(months, return_inverse=True)
    labels = np.datetime_as_string(distinct.astype("datetime64[M]")).astype(object)
    return labels[which.ravel()]
