"""Multivariate payment anomaly: features of a payment, scored by a model.

Each payment becomes five features, each in [0, 1]:

=================  ==============================================================
``log_amount``     log10(1 + amount) / 10 (1e10 CNY = 1)
``hour``           local hour of ``occurred_at`` / 23
``weekday``        local weekday (Monday 0) / 6
``days_since``     log(1 + days since the last payment to this counterparty) / log(366);
                   1 for a counterparty never paid before
``individual``     1 when the payee is a natural person
=================  ==============================================================

``PaymentHalfSpaceTrees`` learns them online (Half-Space Trees, see
``detectors.hst``); ``PaymentIsolationForest`` scores them with a
scikit-learn IsolationForest trained on history (``riskwatch detectors
train``) in micro-batches. Both explain an alert by the features that moved
the score most: each feature in turn is set to its typical value (its mean
over every payment before this one) and the drop in score is its contribution.

Examples
--------
>>> import numpy as np
>>> det = PaymentHalfSpaceTrees(n_trees=10, height=6, window_size=50, seed=1)
>>> n = 400
>>> X = {"key": np.array([f"S{i % 20}" for i in range(n)], dtype=object), "amount": np.full(n, 2e4),
...      "t": np.arange(n) * 3600.0, "hour": np.full(n, 10.0), "weekday": np.full(n, 2.0),
...      "individual": np.zeros(n)}
>>> _ = det.process_many(X)
>>> odd = {"key": np.array(["S1"], dtype=object), "amount": np.array([3e6]), "t": np.array([n * 3600.0]),
...        "hour": np.array([3.0]), "weekday": np.array([6.0]), "individual": np.array([1.0])}
>>> s = det.score_many(odd)
>>> float(s.scores[0]) > 0.8, s.row(0)["top_features"].split(", ")[0] in ("log_amount", "hour", "weekday", "individual")
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.base import Bounds, Columns, Detector, Scores, max_of_parts
from detectors.hst import HalfSpaceTrees, MassPool

__all__ = ["FEATURES", "PaymentFeatures", "PaymentHalfSpaceTrees", "PaymentIsolationForest"]

FEATURES = ("log_amount", "hour", "weekday", "days_since", "individual")
_LOG_YEAR = math.log(366.0)
SWEEP_DAYS = 7  # how often (in business days) forgotten counterparties are swept out


class PaymentFeatures:
    """Turns payment columns into the feature matrix; remembers each counterparty's last payment."""

    def __init__(self) -> None:
        self.last_paid: dict[object, float] = {}
        self._sum = np.zeros(len(FEATURES))  # of every row learned, for the typical values
        self._count = 0
        self._before = (self._sum, np.zeros((0, len(FEATURES))), 0)  # the sum before the last batch, its rows learned
        self._horizon = -math.inf  # last paid before this: forgotten, swept or not
        self._swept_to = -math.inf

    def transform(self, X: Columns, learn: bool) -> np.ndarray:
        M = _matrix(X, self._days(X, learn))
        if learn:
            self._learned(M)
        else:
            self._before = (self._sum, np.zeros_like(M), self._count)
        return M

    @staticmethod
    def transform_pooled(features: list[PaymentFeatures], X: Columns, bounds: Bounds) -> np.ndarray:
        """``transform(X, learn=True)`` of several orgs' rows at once (``features[k]``'s
        are rows ``bounds[k]``): each org keeps its own counterparties and sums,
        the arithmetic is one pass over all rows."""
        keys, times = X["key"].tolist(), np.asarray(X["t"], dtype=float).tolist()
        days = np.empty(len(keys))
        for f, (a, b) in zip(features, bounds):
            f._days_into(keys, times, a, b, True, days)
        M = _matrix(X, days)
        for f, (a, b) in zip(features, bounds):
            f._learned(M[a:b])  # summed as one org alone sums them
        return M

    def _days(self, X: Columns, learn: bool) -> np.ndarray:
        """The days_since feature of each row, reading (and, learning, writing) the last payments."""
        days = np.empty(len(X["amount"]))
        self._days_into(X["key"].tolist(), np.asarray(X["t"], dtype=float).tolist(), 0, len(days), learn, days)
        return days

    def _days_into(self, keys: list, times: list, start: int, stop: int, learn: bool, days: np.ndarray) -> None:
        """``_days`` of rows ``start:stop``, written at their positions."""
        last, horizon = self.last_paid, self._horizon
        for i in range(start, stop):
            k, t = keys[i], times[i]
            prev = last.get(k)
            if prev is not None and prev < horizon:
                prev = None
            days[i] = 1.0 if prev is None else min(1.0, math.log1p(max(0.0, t - prev) / 86400) / _LOG_YEAR)
            if learn and (prev is None or t > prev):
                last[k] = t

    def _learned(self, M: np.ndarray) -> None:
        """Note learned rows. ``typical`` sums the rows before each only when asked
        (an org with a row to explain, seldom): a batch touches thousands of orgs."""
        # a copy: a view would keep the whole batch's matrix alive until the org's next batch
        self._before = (self._sum, M.copy(), self._count)  # ``_sum`` is replaced, never changed in place
        self._sum = self._sum + (M[0] if len(M) == 1 else M.sum(axis=0))
        self._count += len(M)

    def typical(self, rows: np.ndarray) -> np.ndarray:
        """The mean of each feature over every row learned before each of ``rows``
        (of the last batch transformed); the same whatever the batch boundaries."""
        total, learned, count = self._before
        prefix = np.cumsum(learned, axis=0) - learned  # the sums of the rows before each, within the batch
        n = count + rows
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n[:, None] > 0, (total + prefix[rows]) / n[:, None], np.nan)

    def state(self) -> dict:
        horizon = self._horizon
        return {"last_paid": [[list(k) if isinstance(k, tuple) else k, t] for k, t in self.last_paid.items() if t >= horizon],
                "sum": self._sum.tolist(), "count": self._count}

    def load_state(self, state: dict) -> None:
        self.last_paid = {tuple(k) if isinstance(k, list) else k: t for k, t in state["last_paid"]}
        self._sum = np.array(state["sum"], dtype=float)
        self._count = state["count"]
        self._before = (self._sum, np.zeros((0, len(FEATURES))), self._count)

    def forget_before(self, horizon: float) -> None:
        """Forget counterparties last paid before ``horizon``. They are swept out
        once every ``SWEEP_DAYS`` of business time (the sweep scans them all, too
        much for every small batch of each of thousands of orgs); until then
        ``transform`` ignores them."""
        self._horizon = max(self._horizon, horizon)
        day = horizon // 86400 * 86400
        if day >= self._swept_to + SWEEP_DAYS * 86400:
            self._swept_to = day
            last_paid = self.last_paid  # in place: it may be a mapping the runner handed over
            for k in [k for k, t in last_paid.items() if t < day]:
                del last_paid[k]


def _matrix(X: Columns, days: np.ndarray) -> np.ndarray:
    """The feature matrix (``FEATURES``' columns) of payment columns and their days_since."""
    amount = np.nan_to_num(np.asarray(X["amount"], dtype=float))
    return np.column_stack([
        np.clip(np.log10(1 + amount) / 10, 0, 1),
        np.clip(np.asarray(X["hour"], dtype=float) / 23, 0, 1),
        np.clip(np.asarray(X["weekday"], dtype=float) / 6, 0, 1),
        days,
        np.asarray(X["individual"], dtype=float),
    ])


def _explain(score_fn, M: np.ndarray, scores: np.ndarray, features: PaymentFeatures, rows: np.ndarray) -> np.ndarray:
    """For the given rows, the features that lowered the score most when set to typical."""
    out = np.full(len(M), "", dtype=object)
    typical = features.typical(rows) if len(rows) else np.zeros((0, M.shape[1]))
    rows = rows[~np.isnan(typical).any(axis=1)]
    typical = typical[~np.isnan(typical).any(axis=1)]
    if not len(rows):
        return out
    base = scores[rows]
    k = M.shape[1]
    P = np.repeat(M[rows], k, axis=0)  # row r's copies r*k .. r*k+k-1, copy j with feature j typical
    P[np.arange(len(P)), np.tile(np.arange(k), len(rows))] = typical.ravel()
    drops = base[:, None] - score_fn(P).reshape(len(rows), k)  # one scoring call for them all
    for r, d in zip(rows.tolist(), drops):
        order = [FEATURES[j] for j in np.argsort(-d) if d[j] > 0.01][:3]
        out[r] = ", ".join(order)
    return out


def _details(M: np.ndarray, top: np.ndarray) -> dict[str, np.ndarray]:
    return {"top_features": top, "hour_feature": M[:, 1] * 23, "days_since_previous":
            np.where(M[:, 3] >= 1.0, np.nan, np.expm1(M[:, 3] * _LOG_YEAR))}


class PaymentHalfSpaceTrees(Detector):
    """Half-Space Trees over the payment features, learned online.

    Parameters
    ----------
    n_trees, height, window_size, seed
        As in ``river.anomaly.HalfSpaceTrees``.
    explain_above
        Rows scoring at least this are explained (explaining costs a few scores).
    max_idle_days
        Counterparties not paid for this long are forgotten by the features.
    """

    def __init__(self, n_trees: int = 25, height: int = 8, window_size: int = 500, seed: int = 42,
                 explain_above: float = 0.7, max_idle_days: float = 400.0):
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.explain_above = explain_above
        self.max_idle_days = max_idle_days
        self._features = PaymentFeatures()
        self._model = HalfSpaceTrees(FEATURES, n_trees, height, window_size, seed)

    inputs = ("key", "amount", "t", "hour", "weekday", "individual")
    per_key = ("_features.last_paid",)

    def _run(self, X: Columns, learn: bool) -> Scores:
        if learn:
            return type(self).process_pooled([self], X, [(0, len(X["t"]))])
        M = self._features.transform(X, learn)
        top = np.full(len(M), "", dtype=object)
        scores = self._model._score_matrix(M)
        self._explain_into(M, 0, scores, top)
        return Scores(scores, _details(M, top))

    def _explain_into(self, M: np.ndarray, start: int, scores: np.ndarray, top: np.ndarray) -> None:
        """Explain the rows from ``start`` (scored ``scores``) that reach ``explain_above``,
        into ``top``; while the model still holds the masses they were scored with."""
        flagged = np.flatnonzero(scores >= self.explain_above)
        if len(flagged):
            part = _explain(self._model._score_matrix, M, np.concatenate([np.zeros(start), scores]), self._features,
                            start + flagged)
            top[start + flagged] = part[start + flagged]

    def _process_rows(self, M: np.ndarray, paths: np.ndarray, top: np.ndarray) -> np.ndarray:
        """Score then learn rows (``paths``: theirs through the trees); the scores, and
        the explanations written into ``top`` (a view of the rows')."""
        model = self._model
        if model._first_window and self.explain_above > 0 and model._counter + len(M) < model.window_size:
            model.process_paths(paths, False)  # every score is 0 until the first window is full: nothing to explain
            return np.zeros(len(M))
        return model.process_paths(paths, True, lambda start, stop, s: self._explain_into(M, start, s, top))

    @classmethod
    def process_pooled(cls, models: list[Detector], X: Columns, bounds: Bounds) -> Scores:
        """Each org's model on its own rows, the paths of every row through the shared
        trees found in one call (most of a small org's cost)."""
        if len({id(m._model._feature_of) for m in models}) > 1:  # type: ignore[attr-defined]
            return super().process_pooled(models, X, bounds)
        M = PaymentFeatures.transform_pooled([m._features for m in models], X, bounds)  # type: ignore[attr-defined]
        scores, top = np.zeros(len(M)), np.full(len(M), "", dtype=object)
        if len(M):
            paths = models[0]._model._paths(M)  # type: ignore[attr-defined]
            # The orgs whose rows stay inside their model's window, in one call; the rest one by one.
            left = set(MassPool.process_inside([m._model for m in models], paths, bounds, scores))  # type: ignore[attr-defined]
            peaks = max_of_parts(scores, bounds)  # each org's highest score of those scored in the pool
            for k, (model, (a, b), t) in enumerate(zip(models, bounds, max_of_parts(X["t"], bounds))):
                if b > a:
                    if k in left:
                        scores[a:b] = model._process_rows(M[a:b], paths[:, :, a:b], top[a:b])  # type: ignore[attr-defined]
                    elif peaks[k] >= model.explain_above:  # type: ignore[attr-defined]
                        # scored against the reference window, which learning the latest one left as it was
                        model._explain_into(M[a:b], 0, scores[a:b], top[a:b])  # type: ignore[attr-defined]
                    model._features.forget_before(t - model.max_idle_days * 86400)  # type: ignore[attr-defined]
        return Scores(scores, _details(M, top))

    def score_many(self, X: Columns) -> Scores:
        return self._run(X, learn=False)

    def learn_many(self, X: Columns) -> None:
        M = self._features.transform(X, learn=True)
        self._model.learn_many({f: M[:, j] for j, f in enumerate(FEATURES)})

    def process_many(self, X: Columns) -> Scores:
        return self._run(X, learn=True)

    def key_count(self) -> int:
        return len(self._features.last_paid)

    def state(self) -> dict:
        return {"features": self._features.state(), "model": self._model.state()}

    def load_state(self, state: dict) -> None:
        self._features.load_state(state["features"])
        self._model.load_state(state["model"])


class PaymentIsolationForest(Detector):
    """A scikit-learn IsolationForest trained on history, scored in batches.

    Nothing is learned from the stream but each counterparty's last payment
    date (a feature). ``model`` is the forest as ``detectors.iforest.FlatForest``
    (trained with scikit-learn, loaded with ``detectors.modelfile.load_model``);
    without one every score is 0. The score is scikit-learn's anomaly score
    (``-score_samples``), in (0, 1]; around 0.5 and below is normal.

    Parameters
    ----------
    model
        The forest (a ``FlatForest``), or None.
    explain_above
        Rows scoring at least this are explained.
    """

    def __init__(self, model: Any = None, explain_above: float = 0.6, max_idle_days: float = 400.0):
        self.model = model
        self.explain_above = explain_above
        self.max_idle_days = max_idle_days
        self._features = PaymentFeatures()

    inputs = ("key", "amount", "t", "hour", "weekday", "individual")
    per_key = ("_features.last_paid",)

    def _score_matrix(self, M: np.ndarray) -> np.ndarray:
        if self.model is None or not len(M):
            return np.zeros(len(M))
        return self.model.score(M)

    def _run(self, X: Columns, learn: bool) -> Scores:
        if learn:
            return type(self).process_pooled([self], X, [(0, len(X["t"]))])
        M = self._features.transform(X, learn=False)
        scores = self._score_matrix(M)
        top = _explain(self._score_matrix, M, scores, self._features, np.flatnonzero(scores >= self.explain_above))
        return Scores(scores, _details(M, top))

    def score_many(self, X: Columns) -> Scores:
        return self._run(X, learn=False)

    def learn_many(self, X: Columns) -> None:
        self._features.transform(X, learn=True)

    def process_many(self, X: Columns) -> Scores:
        # The features of a row read the last payment *before* it: transform
        # learns row by row as it goes, so one pass is score-then-learn.
        return self._run(X, learn=True)

    @classmethod
    def process_pooled(cls, models: list[Detector], X: Columns, bounds: Bounds) -> Scores:
        """Each org's features from its own state, scored in one call (the forest is shared)."""
        if not models:
            return Scores.concat([])
        if len({id(m.model) for m in models}) > 1:  # type: ignore[attr-defined]
            return super().process_pooled(models, X, bounds)
        M = PaymentFeatures.transform_pooled([m._features for m in models], X, bounds)  # type: ignore[attr-defined]
        first: PaymentIsolationForest = models[0]  # type: ignore[assignment]
        scores = first._score_matrix(M)
        top = np.full(len(M), "", dtype=object)
        sizes = np.array([b - a for a, b in bounds], dtype=np.int64)
        above = np.repeat([m.explain_above for m in models], sizes)  # type: ignore[attr-defined]
        hot = set(np.searchsorted(np.cumsum(sizes), np.flatnonzero(scores >= above), side="right").tolist())
        for k, (model, (a, b), t) in enumerate(zip(models, bounds, max_of_parts(X["t"], bounds))):
            if k in hot:  # each org's explained against its own features' state
                flagged = np.flatnonzero(scores[a:b] >= model.explain_above)  # type: ignore[attr-defined]
                top[a:b] = _explain(first._score_matrix, M[a:b], scores[a:b], model._features, flagged)  # type: ignore[attr-defined]
            if b > a:
                model._features.forget_before(t - first.max_idle_days * 86400)  # type: ignore[attr-defined]
        return Scores(scores, _details(M, top))

    def key_count(self) -> int:
        return len(self._features.last_paid)

    def state(self) -> dict:
        return {"features": self._features.state()}

    def load_state(self, state: dict) -> None:
        self._features.load_state(state["features"])


def training_matrix(X: Columns) -> np.ndarray:
    """The feature matrix of a history, in time order, for fitting a forest."""
    order = np.argsort(np.asarray(X["t"], dtype=float), kind="stable")
    return PaymentFeatures().transform({k: v[order] for k, v in X.items()}, learn=True)
