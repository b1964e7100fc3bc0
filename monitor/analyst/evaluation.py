"""Detector evaluation on labelled events: ROC AUC, PR AUC and precision@k.

Events are scored in file order, in batches, each scored against everything
before it and then learned — exactly as in production. A detector is judged
on the events its ``when`` selects (its scope): a payment detector is not
blamed for missing a journal-entry anomaly.

    results = evaluate(pack, events, labels)           # pure: no files
    for r in results: print(r.detector, r.roc_auc, r.pr_auc, r.precision_at_k)

For a CSV of numeric features (no events), ``evaluate_features`` runs the
multivariate models (Half-Space Trees online; an IsolationForest fitted on the
first part, scored on the rest) over the given columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.core.batch import EventBatch
from monitor.core.detecting import detector_scores
from monitor.core.event import Event
from monitor.core.rules import RulePack
from monitor.core.state import ScorerState

__all__ = ["DetectorResult", "evaluate", "evaluate_features", "metrics_of"]


@dataclass
class DetectorResult:
    detector: str
    model: str
    events: int  # in scope
    positives: int
    roc_auc: float
    pr_auc: float
    k: int
    precision_at_k: float
    alerts: int  # events at or above the threshold
    threshold: float


def metrics_of(labels: np.ndarray, scores: np.ndarray, k: int | None = None) -> tuple[float, float, int, float]:
    """(ROC AUC, PR AUC = average precision, k, precision@k); NaN where undefined.

    >>> metrics_of(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.9, 0.3]))
    (1.0, 1.0, 2, 1.0)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels, dtype=int)
    positives = int(labels.sum())
    k = positives if k is None else k
    if positives == 0 or positives == len(labels):
        return float("nan"), float("nan"), k, float("nan")
    # ties at the cut are broken by position (stable), as a reviewer would read a sorted list
    top = np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k]
    return (float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores)), k,
            float(labels[top].mean()) if k else float("nan"))


def evaluate(pack: RulePack, events: list[Event], labels: np.ndarray, batch_size: int = 8192,
             only: set[str] | None = None, k: int | None = None) -> list[DetectorResult]:
    """Score the events in order with the pack's detectors; metrics per detector."""
    detectors = [d for d in pack.detectors if only is None or d.id in only]
    state = ScorerState()
    scores = {d.id: np.full(len(events), np.nan) for d in detectors}
    for start in range(0, len(events), batch_size):
        batch = EventBatch(events[start:start + batch_size])
        rows = batch.all_rows
        for det in detectors:
            selected = rows[det.when.fn(batch, rows)]
            if len(selected):
                scores[det.id][start + selected] = detector_scores(det, batch, selected, state)
    out = []
    for det in detectors:
        s = scores[det.id]
        scope = ~np.isnan(s)
        roc, pr, kk, p_at_k = metrics_of(labels[scope], s[scope], k)
        out.append(DetectorResult(det.id, det.model, int(scope.sum()), int(labels[scope].sum()), roc, pr, kk, p_at_k,
                                  int((s[scope] >= det.threshold).sum()), det.threshold))
    return out


def evaluate_features(matrix: np.ndarray, labels: np.ndarray, names: list[str], seed: int = 42,
                      history_share: float = 0.2, k: int | None = None) -> list[DetectorResult]:
    """Multivariate models over numeric feature columns, in row order."""
    from sklearn.ensemble import IsolationForest

    from detectors.hst import HalfSpaceTrees

    lo, hi = np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.nan_to_num((matrix - lo) / span)  # the file's own range: HST wants [0, 1]
    hst = HalfSpaceTrees(tuple(names), n_trees=25, height=8, window_size=min(500, max(10, len(matrix) // 10)), seed=seed)
    hst_scores = hst.process_many({n: scaled[:, j] for j, n in enumerate(names)}).scores
    out = []
    roc, pr, kk, p = metrics_of(labels, hst_scores, k)
    out.append(DetectorResult("half_space_trees", "half_space_trees", len(labels), int(labels.sum()), roc, pr, kk, p,
                              0, float("nan")))
    cut = max(1, int(len(matrix) * history_share))
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(np.nan_to_num(matrix[:cut]))
    rest = slice(cut, None)
    roc, pr, kk, p = metrics_of(labels[rest], -forest.score_samples(np.nan_to_num(matrix[rest])), k)
    out.append(DetectorResult("isolation_forest", "isolation_forest", len(labels) - cut, int(labels[rest].sum()),
                              roc, pr, kk, p, 0, float("nan")))
    return out
