"""Detector evaluation on labelled events: ROC AUC, PR AUC and precision@k.

Events are scored in file order, in batches, each scored against everything
before it and then learned — exactly as in production. A detector is judged
on the events its ``when`` selects (its scope): a payment detector is not
blamed for missing a journal-entry anomaly.

    results = evaluate(pack, events, labels)           # pure: no files
    for r in results: print(r.detector, r.roc_auc, r.pr_auc, r.precision_at_k)

For a CSV of numeric features (no events), ``evaluate_features`` runs the
multivariate models over the given columns with no look-ahead: Half-Space
Trees score each row before learning it, on features scaled by the rows
before it; an IsolationForest is fitted on the first part, which is left out
of its scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.core.batch import EventBatch
from monitor.core.detecting import detector_scores
from monitor.core.event import Event
from monitor.core.rules import RulePack
from monitor.core.state import ScorerState

__all__ = ["DetectorResult", "evaluate", "evaluate_features", "event_scores", "feature_scores", "metrics_of",
           "online_minmax"]


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


def event_scores(pack: RulePack, events: list[Event], batch_size: int = 8192,
                 only: set[str] | None = None) -> dict[str, np.ndarray]:
    """Each detector's score per event, in order, each scored before it is learned
    (NaN where the detector's ``when`` does not select the event)."""
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
    return scores


def evaluate(pack: RulePack, events: list[Event], labels: np.ndarray, batch_size: int = 8192,
             only: set[str] | None = None, k: int | None = None,
             scores: dict[str, np.ndarray] | None = None) -> list[DetectorResult]:
    """Score the events in order with the pack's detectors (``event_scores``, unless
    given); metrics per detector."""
    scores = event_scores(pack, events, batch_size, only) if scores is None else scores
    out = []
    for det in (d for d in pack.detectors if d.id in scores):
        s = scores[det.id]
        scope = ~np.isnan(s)
        roc, pr, kk, p_at_k = metrics_of(labels[scope], s[scope], k)
        out.append(DetectorResult(det.id, det.model, int(scope.sum()), int(labels[scope].sum()), roc, pr, kk, p_at_k,
                                  int((s[scope] >= det.threshold).sum()), det.threshold))
    return out


def online_minmax(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row scaled to [0, 1] by the range of the rows before it (as scored), and by
    the range including it (as learned): river's ``MinMaxScaler``, no look-ahead. A
    column with no range yet gives 0; a missing value gives 0 and does not move the range.

    >>> scored, learned = online_minmax(np.array([[1.0], [3.0], [2.0], [5.0]]))
    >>> scored.ravel().tolist(), learned.ravel().tolist()
    ([0.0, 0.0, 0.5, 2.0], [0.0, 1.0, 0.5, 1.0])
    """
    m = np.asarray(matrix, dtype=float)
    lo_incl, hi_incl = np.fmin.accumulate(m, axis=0), np.fmax.accumulate(m, axis=0)
    first = np.full((1, m.shape[1]), np.nan)
    lo_before, hi_before = np.vstack([first, lo_incl[:-1]]), np.vstack([first, hi_incl[:-1]])

    def scaled(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        span = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(span > 0, (m - lo) / np.where(span > 0, span, 1.0), 0.0)
        return np.nan_to_num(out)

    return scaled(lo_before, hi_before), scaled(lo_incl, hi_incl)


def feature_scores(matrix: np.ndarray, names: list[str], seed: int = 42,
                   history_share: float = 0.2) -> tuple[dict[str, np.ndarray], int]:
    """Each multivariate model's score per row (NaN where a row is not scored), and the
    rows the forest was fitted on (the first ``history_share``, left unscored).

    Half-Space Trees score each row before learning it, on features scaled online
    (``online_minmax``): what the model would have seen live."""
    from sklearn.ensemble import IsolationForest

    from detectors.hst import HalfSpaceTrees

    scored, learned = online_minmax(matrix)
    hst = HalfSpaceTrees(tuple(names), n_trees=25, height=8, window_size=min(500, max(10, len(matrix) // 10)), seed=seed)
    out = {"half_space_trees": hst.process_matrix(scored, learned=learned)}
    cut = max(1, int(len(matrix) * history_share))
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(np.nan_to_num(matrix[:cut]))
    forest_scores = np.full(len(matrix), np.nan)
    forest_scores[cut:] = -forest.score_samples(np.nan_to_num(matrix[cut:]))
    out["isolation_forest"] = forest_scores
    return out, cut


def evaluate_features(matrix: np.ndarray, labels: np.ndarray, names: list[str], seed: int = 42,
                      history_share: float = 0.2, k: int | None = None,
                      scores: dict[str, np.ndarray] | None = None) -> list[DetectorResult]:
    """Multivariate models over numeric feature columns, in row order (``feature_scores``,
    unless given)."""
    scores = feature_scores(matrix, names, seed, history_share)[0] if scores is None else scores
    out = []
    for model, s in scores.items():
        scope = ~np.isnan(s)
        roc, pr, kk, p = metrics_of(labels[scope], s[scope], k)
        out.append(DetectorResult(model, model, int(scope.sum()), int(labels[scope].sum()), roc, pr, kk, p, 0, float("nan")))
    return out

