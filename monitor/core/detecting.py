"""Running the detectors of a pack over a batch: columns in, findings out. Pure.

Each detector entry selects its events (``when``), and each org keeps its own
model (``state.detectors[detector id][(org,)]``), so an org's normal is
learned from its own history and the Kafka worker can keep a model in the
changelog partition of that org's events. Rows are scored against everything
before them and then learned (``process_many``). Rows at or above the
threshold become findings, one per alert key (the ``by`` values, plus the
period for per-month detectors), carrying the highest score and the details
of its row for the message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors import MODELS, Detector
from monitor.core.batch import EventBatch
from monitor.core.calibration import OrgTails, TailRecord
from monitor.core.detectorspec import CompiledDetector
from monitor.core.findings import Finding
from monitor.core.rulelang import EVENT_FIELD_TYPES
from monitor.core.state import ScorerState

__all__ = ["detector_columns", "detector_findings", "detector_model", "detector_scores"]


_INPUTS = {
    "amount": lambda batch, rows: batch.column("amount", rows),
    "t": lambda batch, rows: batch.column("occurred_at", rows),
    "hour": lambda batch, rows: batch.column("occurred_at:hour", rows),
    "weekday": lambda batch, rows: batch.column("occurred_at:weekday", rows),
    "individual": lambda batch, rows: batch.equals("attributes.payee_type", "individual", rows).astype(float),
}


def detector_columns(batch: EventBatch, rows: np.ndarray, by: tuple[str, ...],
                     inputs: tuple[str, ...] = tuple(_INPUTS)) -> dict[str, np.ndarray]:
    """The columns a detector model reads (``inputs``; ``key`` holds the ``by`` values), for the given rows."""
    key = np.empty(len(rows), dtype=object)
    key[:] = list(zip(*(batch.column(p, rows).tolist() for p in by)))
    return {"key": key} | {name: _INPUTS[name](batch, rows) for name in inputs if name != "key"}


def detector_model(det: CompiledDetector, state: ScorerState, org: Any) -> Detector:
    """The org's model, made or restored from plain state on first use."""
    store = state.detectors.setdefault(det.id, {})
    held = store.get((org,))
    if isinstance(held, Detector):
        return held
    model = det.new_model()
    if held is not None:
        model.load_state(held)
    store[(org,)] = model
    return model


def detector_scores(det: CompiledDetector, batch: EventBatch, selected: np.ndarray, state: ScorerState) -> np.ndarray:
    """Score and learn the selected rows; returns their scores (for evaluation)."""
    return _in_order(len(selected), _process(det, batch, selected, state))


def _in_order(n: int, processed) -> np.ndarray:
    """The scores of ``_process``'s parts (by org) back in the selected rows' order."""
    scores = np.zeros(n)
    for positions, _org, s in processed:
        scores[positions] = s.scores
    return scores


def _process(det: CompiledDetector, batch: EventBatch, selected: np.ndarray, state: ScorerState):
    """(positions in ``selected``, org, Scores) per org, each org scored by its own model."""
    by_org: dict[Any, list[int]] = {}
    for i, org in enumerate(batch.column("org_id", selected).tolist()):
        by_org.setdefault(org, []).append(i)
    kind = MODELS[det.model]
    columns = detector_columns(batch, selected, det.by, kind.inputs)
    parts, models = [], []
    tails = _tails(det, state, by_org) if det.calibrated else None
    for org, positions in by_org.items():
        model = detector_model(det, state, org)
        if tails is not None and hasattr(model, "explain_above"):  # explain only what may alert
            model.explain_above = tails.floor(org, det.alpha, det.warmup, len(positions))
        take = np.array(positions)
        models.append((org, model))
        parts.append((model, columns if len(positions) == len(selected) else
                      {name: col[take] for name, col in columns.items()}))
    results = kind.process_pooled(parts)
    out = []
    for (org, model), positions, scores in zip(models, by_org.values(), results):
        state.detectors[det.id][(org,)] = model  # a table-backed store needs the write
        out.append((positions, org, scores))
    return out


def _tails(det: CompiledDetector, state: ScorerState, orgs) -> OrgTails:
    """The detector's histograms, holding every org of the batch: an org's is loaded from
    its record in the store when the store holds a record rather than the live one (a
    restart, a rebalance, a store that dropped its cache)."""
    tails = state.tails.get(det.id)
    if tails is None:
        tails = state.tails[det.id] = OrgTails()
    store = state.detectors.setdefault(det.id, {})
    for org in orgs:
        held = store.get((org, "tail"))
        if isinstance(held, TailRecord) and held.tails is tails:
            continue
        if held is not None:
            tails.load(org, held)
        elif str(org) in tails.rows:
            tails.forget(org)  # the store lost it (cleared): so does the histogram
        store[(org, "tail")] = TailRecord(tails, org)
    return tails


def _calibrated_hits(det: CompiledDetector, batch: EventBatch, selected: np.ndarray, state: ScorerState,
                     scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whether each selected row alerts, its p-value), the rows in stream order."""
    p, alert = state.tails[det.id].calibrate(batch.column("org_id", selected), scores,
                                             batch.column("occurred_at", selected), det.alpha, det.warmup,
                                             det.daily_cap)
    return alert, p


def detector_findings(det: CompiledDetector, batch: EventBatch, selected: np.ndarray, state: ScorerState,
                      scores_out: dict[str, np.ndarray] | None = None):
    """Score and learn the selected rows; returns the findings above the threshold
    (and puts every row's score in ``scores_out[det.id]`` when given)."""
    groups: dict[tuple, list[tuple[float, int, dict]]] = {}
    processed = _process(det, batch, selected, state)
    if scores_out is not None or det.calibrated:
        in_order = _in_order(len(selected), processed)
        if scores_out is not None:
            scores_out[det.id] = in_order
        if det.calibrated:
            alert, p_values = _calibrated_hits(det, batch, selected, state, in_order)
    for positions, _org, scores in processed:
        rows = selected[positions]
        hits = alert[positions] if det.calibrated else scores.scores >= det.threshold
        for i in np.flatnonzero(hits).tolist():
            details = scores.row(i)
            if det.calibrated:
                p_value = float(p_values[positions[i]])
                details.update(p_value=p_value, one_in=1 / p_value)
            row = int(rows[i])
            key = tuple(batch.value(p, row) for p in det.by)
            if "period" in details:
                key += (details["period"],)
            groups.setdefault(key, []).append((float(scores.scores[i]), row, details))
    findings = []
    times = batch.column("occurred_at", batch.all_rows)
    for key, hits in groups.items():
        best_score, best_row, details = max(hits, key=lambda h: h[0])
        values = {f: batch.value(f, best_row) for f in det.message.fields if f in EVENT_FIELD_TYPES}
        values.update(details)
        values.update(score=best_score, threshold=det.threshold, org_id=batch.events[best_row].org_id)
        hit_times = [float(times[r]) for _, r, _ in hits]
        findings.append(Finding(det.id, key, [batch.events[r].event_id for _, r, _ in hits],
                                min(hit_times), max(hit_times), values, best_score))
    return findings
