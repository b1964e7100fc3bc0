"""Counterparty velocity: a new or dormant counterparty suddenly paid many times, or a lot.

Per key (a counterparty within an org) the detector remembers when it was
last paid. A payment to a key never seen, or not seen for ``dormant_days``,
opens an episode; the payments of the next ``window_days`` count towards it.
An episode is scored by how far it goes past ``min_payments`` payments or
``min_amount`` in total (a single payment never makes an episode "many"):
reaching either scores 0.5, twice over 0.67.

"New" only means something once the detector has watched for
``history_days``: before that every counterparty looks new, so it scores 0.

Examples
--------
>>> import numpy as np
>>> det = Velocity(window_days=7, min_payments=5, history_days=30)
>>> day = 86400.0
>>> old = {"key": np.array(["SUP-1"] * 40, dtype=object), "amount": np.full(40, 1e4), "t": np.arange(40) * day}
>>> float(det.process_many(old).scores.max())           # weekly supplier, watched from the start
0.0
>>> burst = {"key": np.array(["SUP-9"] * 6, dtype=object), "amount": np.full(6, 3e5),
...          "t": 45 * day + np.arange(6) * 3600.0}
>>> s = det.process_many(burst)
>>> [round(v, 2) for v in s.scores.tolist()]
[0.0, 0.29, 0.37, 0.44, 0.5, 0.55]
>>> s.row(5)["status"], s.row(5)["payments"]
('new', 6)
"""

from __future__ import annotations

import math

import numpy as np

from detectors.base import Bounds, Columns, Detector, Scores, squash

__all__ = ["Velocity"]

_DAY = 86400.0
_SWEEP_EVERY = 20_000


class _Key:
    __slots__ = ("last_t", "episode_start", "status", "payments", "total")

    def __init__(self) -> None:
        self.last_t = -math.inf
        self.episode_start = -math.inf
        self.status = ""
        self.payments = 0
        self.total = 0.0


class Velocity(Detector):
    """Bursts of payments to new or dormant counterparties.

    Parameters
    ----------
    window_days
        How long after a counterparty (re)appears its payments are counted.
    min_payments
        Payments within the window that make a burst (score 0.5).
    min_amount
        Total within the window that makes a burst (score 0.5), once there
        are at least two payments.
    dormant_days
        A counterparty not paid for this long counts as new again; it is
        also when the detector forgets it.
    history_days
        How long the detector must have watched before "new" means new.
    """

    per_key = ("_keys",)

    def __init__(self, window_days: float = 7.0, min_payments: int = 5, min_amount: float = 10_000_000.0,
                 dormant_days: float = 180.0, history_days: float = 30.0):
        self.window_days = window_days
        self.min_payments = min_payments
        self.min_amount = min_amount
        self.dormant_days = dormant_days
        self.history_days = history_days
        self._keys: dict[object, _Key] = {}
        self._first_t = math.inf
        self._newest = -math.inf
        self._learned = 0

    def _episode(self, k: _Key | None, t: float) -> tuple[str, int, float, float]:
        """(status, payments before, total before, days since the previous payment)."""
        if k is None:
            return "new", 0, 0.0, math.nan
        since = (t - k.last_t) / _DAY
        if since > self.dormant_days:
            return "dormant", 0, 0.0, since
        if k.status and t - k.episode_start <= self.window_days * _DAY:
            return k.status, k.payments, k.total, since
        return "", 0, 0.0, since

    def _score(self, k: _Key | None, amount: float, t: float) -> tuple:
        status, payments, total, since = self._episode(k, t)
        if not status or t - self._first_t < self.history_days * _DAY:
            return 0.0, "", 0, 0.0, since
        payments += 1
        total += amount if amount == amount else 0.0
        ratio = payments / self.min_payments
        if payments >= 2:
            ratio = max(ratio, total / self.min_amount)
        return float(squash(ratio)) if payments >= 2 else 0.0, status, payments, total, since

    def _learn(self, key: object, amount: float, t: float) -> None:
        k = self._keys.get(key)
        status, payments, total, _ = self._episode(k, t)
        if k is None:
            k = self._keys[key] = _Key()
        if status and not payments:  # a new episode opens
            k.episode_start, k.payments, k.total = t, 0, 0.0
        k.status = status
        if status:
            k.payments += 1
            k.total += amount if amount == amount else 0.0
        k.last_t = max(k.last_t, t)
        self._first_t = min(self._first_t, t)
        self._newest = max(self._newest, t)
        self._learned += 1
        if self._learned % _SWEEP_EVERY == 0:
            self._sweep()

    # --- batches --------------------------------------------------------------------
    def score_many(self, X: Columns) -> Scores:
        return _scores([self._score(self._keys.get(k), a, t)
                        for k, a, t in zip(X["key"].tolist(), X["amount"].tolist(), X["t"].tolist())])

    def learn_many(self, X: Columns) -> None:
        for k, a, t in zip(X["key"].tolist(), X["amount"].tolist(), X["t"].tolist()):
            self._learn(k, a, t)

    def process_many(self, X: Columns) -> Scores:
        return type(self).process_pooled([self], X, [(0, len(X["t"]))])

    @classmethod
    def process_pooled(cls, models: list[Detector], X: Columns, bounds: Bounds) -> Scores:
        """Each org's rows scored then learned by its own model; the columns made once for all."""
        keys, amounts, times = X["key"].tolist(), X["amount"].tolist(), X["t"].tolist()
        n = len(keys)
        columns = ([0.0] * n, [""] * n, [0] * n, [0.0] * n, [math.nan] * n)
        for model, (start, stop) in zip(models, bounds):
            if stop > start:
                model._process_rows(keys, amounts, times, start, stop, columns)  # type: ignore[attr-defined]
        return _scores_of(*columns)

    def _process_rows(self, keys: list, amounts: list, times: list, start: int, stop: int,
                      columns: tuple[list, ...]) -> None:
        """``_score`` then ``_learn`` of rows ``start:stop``, inlined: this loop is the detector's cost.
        Writes each row's score, status, payments, window total and days since into ``columns``."""
        score, statuses, payments_of, totals, since_of = columns
        held = self._keys
        dormant, window, history = self.dormant_days, self.window_days * _DAY, self.history_days * _DAY
        min_payments, min_amount = self.min_payments, self.min_amount
        for i in range(start, stop):
            key, a, t = keys[i], amounts[i], times[i]
            k = held.get(key)
            # _episode: (status, payments before, total before, days since the previous payment)
            if k is None:
                status, payments, total, since = "new", 0, 0.0, math.nan
            else:
                since = (t - k.last_t) / _DAY
                if since > dormant:
                    status, payments, total = "dormant", 0, 0.0
                elif k.status and t - k.episode_start <= window:
                    status, payments, total = k.status, k.payments, k.total
                else:
                    status, payments, total = "", 0, 0.0
            since_of[i] = since
            paid = a if a == a else 0.0
            if status and t - self._first_t >= history:
                ratio = (payments + 1) / min_payments
                if payments >= 1:  # two payments or more: the total counts too
                    ratio = max(ratio, (total + paid) / min_amount)
                    score[i] = ratio / (ratio + 1.0)
                statuses[i], payments_of[i], totals[i] = status, payments + 1, total + paid
            # _learn
            if k is None:
                k = held[key] = _Key()
            if status and not payments:  # a new episode opens
                k.episode_start, k.payments, k.total = t, 0, 0.0
            k.status = status
            if status:
                k.payments += 1
                k.total += paid
            if t > k.last_t:
                k.last_t = t
            if t < self._first_t:
                self._first_t = t
            if t > self._newest:
                self._newest = t
            self._learned += 1
            if self._learned % _SWEEP_EVERY == 0:
                self._sweep()

    def _sweep(self) -> None:
        horizon = self._newest - self.dormant_days * _DAY
        for key in [x for x, v in self._keys.items() if v.last_t < horizon]:
            del self._keys[key]

    def key_count(self) -> int:
        return len(self._keys)

    # --- state ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"keys": [[list(key) if isinstance(key, tuple) else key, k.last_t, k.episode_start, k.status,
                          k.payments, k.total] for key, k in self._keys.items()],
                "first_t": self._first_t, "newest": self._newest, "learned": self._learned}

    def load_state(self, state: dict) -> None:
        self._keys = {}
        for key, last_t, start, status, payments, total in state["keys"]:
            k = _Key()
            k.last_t, k.episode_start, k.status, k.payments, k.total = last_t, start, status, payments, total
            self._keys[tuple(key) if isinstance(key, list) else key] = k
        self._first_t, self._newest, self._learned = state["first_t"], state["newest"], state["learned"]


def _scores(rows: list[tuple]) -> Scores:
    return _scores_of(*map(list, zip(*rows))) if rows else _scores_of([], [], [], [], [])


def _scores_of(score: list, status: list, payments: list, total: list, since: list) -> Scores:
    if not score:
        return Scores(np.zeros(0), {"status": np.zeros(0, dtype=object), "payments": np.zeros(0, dtype=np.int64),
                                    "window_total": np.zeros(0), "days_since_previous": np.zeros(0)})
    return Scores(np.array(score), {"status": np.array(status, dtype=object), "payments": np.array(payments),
                                    "window_total": np.array(total), "days_since_previous": np.array(since)})
