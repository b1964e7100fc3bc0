"""The detector interface, in river's shape.

A detector learns from one observation at a time (``learn_one``) and scores
one (``score_one``: a float in [0, 1], higher is more anomalous, 0 while it
has not seen enough). Observations are dicts of features; keyed detectors
read their key and business time from the same dict (``key``, ``t``).

For speed there are batch forms over columns (a dict of equal-length numpy
arrays): ``score_many`` and ``learn_many``, and ``process_many``, which is
what a stream needs — each row scored against what came before it, then
learned — and gives exactly what the one-at-a-time loop gives.

Settings are constructor arguments stored under their own names; learned
state is kept apart and round-trips through ``state()`` / ``load_state()``
as plain data (MessagePack-able), so a restart or a rebalance does not
forget what was learned.
"""

from __future__ import annotations

import abc
import inspect
import math
from typing import Any

import numpy as np

__all__ = ["Bounds", "Columns", "Detector", "Scores", "max_of_parts", "rows_of", "squash"]

Columns = dict[str, np.ndarray]
Bounds = list[tuple[int, int]]  # model k of a pooled call reads rows bounds[k][0]:bounds[k][1]


class Scores:
    """Scores of a batch, and per-row details an alert can explain itself with."""

    __slots__ = ("scores", "details")

    def __init__(self, scores: np.ndarray, details: dict[str, np.ndarray] | None = None):
        self.scores = scores
        self.details = details or {}

    def part(self, start: int, stop: int) -> Scores:
        """Rows ``start:stop`` (views): one org's share of scores made for many at once."""
        return Scores(self.scores[start:stop], {name: col[start:stop] for name, col in self.details.items()})

    @staticmethod
    def concat(parts: list[Scores]) -> Scores:
        """Several batches' scores end to end (the parts of a pooled call).

        >>> Scores.concat([Scores(np.array([0.5]), {"z": np.array([3.0])}), Scores(np.zeros(0))]).details["z"].tolist()
        [3.0]
        """
        parts = [p for p in parts if len(p.scores)] or parts[:1]
        if not parts:
            return Scores(np.zeros(0))
        if len(parts) == 1:
            return parts[0]
        return Scores(np.concatenate([p.scores for p in parts]),
                      {name: np.concatenate([p.details[name] for p in parts]) for name in parts[0].details})

    def row(self, i: int) -> dict[str, Any]:
        """The details of one row as plain Python values."""
        out = {}
        for name, col in self.details.items():
            v = col[i]
            out[name] = v.item() if isinstance(v, np.generic) else v
        return out


def squash(ratio: np.ndarray | float) -> np.ndarray:
    """Map "how many times over the reference" (>= 0) onto [0, 1): 1 -> 0.5, 3 -> 0.75.

    >>> squash(np.array([0.0, 1.0, 3.0])).tolist()
    [0.0, 0.5, 0.75]
    """
    r = np.maximum(np.asarray(ratio, dtype=float), 0.0)
    return r / (r + 1.0)


class Detector(abc.ABC):
    """Base class: settings in ``__init__`` arguments, learned state apart."""

    #: the columns (or dict keys) the detector reads
    inputs: tuple[str, ...] = ("key", "amount", "t")
    #: attributes (dotted paths) holding a dict of per-key state that grows with the keys
    #: seen. A runner may hand the model any mapping in its place (one kept on disk, say):
    #: the model uses only get, [] =, del, items and len on it, and never rebinds it
    #: while scoring.
    per_key: tuple[str, ...] = ()

    def learn_one(self, x: dict) -> None:
        self.learn_many(_one(x))

    def score_one(self, x: dict) -> float:
        return float(self.score_many(_one(x)).scores[0])

    @abc.abstractmethod
    def score_many(self, X: Columns) -> Scores:
        """Score every row against the state as it is (nothing is learned)."""

    @abc.abstractmethod
    def learn_many(self, X: Columns) -> None:
        """Learn every row, in order."""

    def process_many(self, X: Columns) -> Scores:
        """Score each row against everything before it, then learn it.

        The default is the one-at-a-time loop; detectors override it with a
        batch form that gives the same result.
        """
        n = _length(X)
        scores = np.zeros(n)
        details: dict[str, list] = {}
        for i in range(n):
            row = {k: v[i:i + 1] for k, v in X.items()}
            s = self.score_many(row)
            scores[i] = s.scores[0]
            for name, col in s.details.items():
                details.setdefault(name, []).append(col[0])
            self.learn_many(row)
        return Scores(scores, {k: np.array(v) for k, v in details.items()})

    @classmethod
    def process_pooled(cls, models: list[Detector], X: Columns, bounds: Bounds) -> Scores:
        """``process_many`` for several models of one kind (one per org) at once:
        model ``k`` scores then learns rows ``bounds[k]`` of ``X`` (each org's rows
        together, in stream order), and the scores come back in ``X``'s order.

        The default calls each in turn; a kind whose scoring has a high fixed
        cost per call (a scikit-learn model), or a high cost per org, overrides
        it to score every org's rows in one call while each model keeps its own state.
        """
        return Scores.concat([model.process_many(rows_of(X, a, b)) for model, (a, b) in zip(models, bounds)])

    # --- settings and state -------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The constructor arguments, by name (river's ``_get_params``)."""
        names = inspect.signature(type(self).__init__).parameters
        return {n: getattr(self, n) for n in names if n != "self"}

    def clone(self) -> Detector:
        """A fresh detector with the same settings and nothing learned."""
        return type(self)(**self.params())

    @abc.abstractmethod
    def state(self) -> Any:
        """What was learned, as plain data (lists, dicts, numbers, strings)."""

    @abc.abstractmethod
    def load_state(self, state: Any) -> None:
        """Restore what ``state()`` returned."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _one(x: dict) -> Columns:
    out: Columns = {}
    for k, v in x.items():
        arr = np.empty(1, dtype=object if isinstance(v, (tuple, str)) or v is None else float)
        arr[0] = v
        out[k] = arr
    return out


def rows_of(X: Columns, start: int, stop: int) -> Columns:
    """Rows ``start:stop`` of every column (views)."""
    return {name: col[start:stop] for name, col in X.items()}


def max_of_parts(values: np.ndarray, bounds: Bounds) -> list[float]:
    """The highest value of each part's rows (-inf for an empty part), in one pass: the
    newest time of each org's rows, say.

    >>> max_of_parts(np.array([3.0, 1.0, 7.0]), [(0, 2), (2, 2), (2, 3)])
    [3.0, -inf, 7.0]
    """
    starts = np.array([a for a, b in bounds if b > a], dtype=np.int64)
    highest = iter(np.maximum.reduceat(np.asarray(values, dtype=float), starts).tolist() if len(starts) else [])
    return [next(highest) if b > a else -math.inf for a, b in bounds]


def _length(X: Columns) -> int:
    return len(next(iter(X.values()))) if X else 0
