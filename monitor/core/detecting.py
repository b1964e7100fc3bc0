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

from operator import attrgetter
from typing import Any

import numpy as np

from detectors import MODELS, Detector
from detectors.base import Scores
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
    return _model_in(det, state.detectors.setdefault(det.id, {}), org, state.per_key_maps)


_MODEL_TYPES = frozenset(MODELS.values())


def _model_in(det: CompiledDetector, store, org: Any, per_key_maps=None) -> Detector:
    held = store.get((org,))
    if held is not None and (type(held) in _MODEL_TYPES or isinstance(held, Detector)):  # skips the ABC's slow check
        return held
    model = det.new_model()
    if held is not None:
        model.load_state(held)
    if per_key_maps is not None:
        for path in model.per_key:
            owner_path, _, name = path.rpartition(".")
            owner = attrgetter(owner_path)(model) if owner_path else model
            setattr(owner, name, per_key_maps(det.id, org, path, getattr(owner, name)))
    store[(org,)] = model
    return model


def detector_scores(det: CompiledDetector, batch: EventBatch, selected: np.ndarray, state: ScorerState) -> np.ndarray:
    """Score and learn the selected rows; returns their scores (for evaluation)."""
    return _process(det, batch, selected, state).in_order()


class _Processed:
    """A batch's scores, the selected rows grouped by org: row ``i`` of ``pooled``
    is the selected row at position ``order[i]``."""

    __slots__ = ("order", "pooled", "_at")

    def __init__(self, order: np.ndarray, pooled: Scores):
        self.order, self.pooled = order, pooled
        self._at: np.ndarray | None = None  # position -> its place in ``order``, when first asked

    def in_order(self) -> np.ndarray:
        """Every selected row's score, in the selected rows' order."""
        scores = np.zeros(len(self.order))
        if len(self.pooled.scores):
            scores[self.order] = self.pooled.scores
        return scores

    def details(self, position: int) -> dict[str, Any]:
        """The details of the selected row at ``position``."""
        if self._at is None:
            self._at = np.empty_like(self.order)
            self._at[self.order] = np.arange(len(self.order))
        return self.pooled.row(int(self._at[position]))


def _process(det: CompiledDetector, batch: EventBatch, selected: np.ndarray, state: ScorerState) -> _Processed:
    """Each org's rows scored by its own model, the models of a kind in one call."""
    batch_codes, batch_orgs = batch.org_codes()
    present, code = np.unique(batch_codes[selected], return_inverse=True)  # orgs as first seen in the batch
    code = code.ravel()
    orgs = [batch_orgs[i] for i in present.tolist()]
    order = np.argsort(code, kind="stable")  # by org, in stream order within each
    counts = np.bincount(code, minlength=len(orgs))
    starts = np.concatenate(([0], np.cumsum(counts)))
    kind = MODELS[det.model]
    columns = detector_columns(batch, selected, det.by, kind.inputs)
    if len(orgs) > 1:
        columns = {name: col[order] for name, col in columns.items()}  # each org's rows a slice
    store = state.detectors.setdefault(det.id, {})
    if type(store) is dict:
        slots = _slots_of(det, state, store)
        numbers = batch.org_numbers(state.org_numbers)[present]
        models = slots.models_of(det, state, numbers, orgs)
        tails = slots.tails_of(det, state, numbers, orgs) if det.calibrated else None
    else:
        tails = _tails(det, state, orgs) if det.calibrated else None
        models = [store.get((org,)) for org in orgs]
        for k, model in enumerate(models):
            if type(model) not in _MODEL_TYPES:  # not yet made, or held as plain state
                models[k] = _model_in(det, store, orgs[k], state.per_key_maps)
    if tails is not None and models and hasattr(models[0], "explain_above"):  # explain only what may alert
        for model, floor in zip(models, tails.floors(orgs, det.alpha, det.warmup, counts).tolist()):
            model.explain_above = floor
    edges = starts.tolist()
    pooled = kind.process_pooled(models, columns, list(zip(edges[:-1], edges[1:])))
    if type(store) is not dict:  # a table-backed store needs the write (a dict holds the model itself)
        for org, model in zip(orgs, models):
            store[(org,)] = model
    return _Processed(order, pooled)


class _Slots:
    """A detector's models in a plain-dict store, by the orgs' numbers in the state
    (``ScorerState.org_numbers``): found for a batch's orgs with one numpy index,
    not a dict look-up per org. Valid while the store is the same dict: only
    ``_model_in`` puts models into it, and a model, once in, stays (a changed
    detector's store is replaced, a restored state is new)."""

    __slots__ = ("store", "models", "tails", "tailed")

    def __init__(self, store: dict):
        self.store = store
        self.models = np.empty(0, dtype=object)  # None: not looked up yet
        self.tails: OrgTails | None = None  # what ``tailed`` refers to
        self.tailed = np.zeros(0, dtype=bool)  # the org's histogram record is in the store, bound to ``tails``

    def _fit(self, size: int) -> None:
        if size > len(self.models):
            more = max(size, 2 * len(self.models)) - len(self.models)
            self.models = np.concatenate([self.models, np.empty(more, dtype=object)])
            self.tailed = np.concatenate([self.tailed, np.zeros(more, dtype=bool)])

    def models_of(self, det: CompiledDetector, state: ScorerState, numbers: np.ndarray, orgs: list) -> list:
        self._fit(len(state.org_numbers))
        found = self.models[numbers]
        for k in np.flatnonzero(np.equal(found, None)).tolist():
            found[k] = self.models[numbers[k]] = _model_in(det, self.store, orgs[k], state.per_key_maps)
        return found.tolist()

    def tails_of(self, det: CompiledDetector, state: ScorerState, numbers: np.ndarray, orgs: list) -> OrgTails:
        tails = state.tails.get(det.id)
        if tails is None or tails is not self.tails:
            self.tailed[:] = False  # new histograms: every org's record is bound again
        self._fit(len(state.org_numbers))
        new = np.flatnonzero(~self.tailed[numbers])
        if len(new):  # (the scorer calls with rows: after a reset every org is new)
            self.tails = _tails(det, state, [orgs[k] for k in new.tolist()])
            self.tailed[numbers[new]] = True
        return self.tails


def _slots_of(det: CompiledDetector, state: ScorerState, store: dict) -> _Slots:
    slots = state.model_slots.get(det.id)
    if slots is None or slots.store is not store:
        slots = state.model_slots[det.id] = _Slots(store)
    return slots


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
    scores = processed.in_order()
    if scores_out is not None:
        scores_out[det.id] = scores
    if det.calibrated:
        hits, p_values = _calibrated_hits(det, batch, selected, state, scores)
    else:
        hits = scores >= det.threshold
    for i in np.flatnonzero(hits).tolist():
        details = processed.details(i)
        if det.calibrated:
            p_value = float(p_values[i])
            details.update(p_value=p_value, one_in=1 / p_value)
        row = int(selected[i])
        key = tuple(batch.value(p, row) for p in det.by)
        if "period" in details:
            key += (details["period"],)
        groups.setdefault(key, []).append((float(scores[i]), row, details))
    findings = []
    times = batch.column("occurred_at", batch.all_rows)
    for key, hits_of_key in groups.items():
        best_score, best_row, details = max(hits_of_key, key=lambda h: h[0])
        values = {f: batch.value(f, best_row) for f in det.message.fields if f in EVENT_FIELD_TYPES}
        values.update(details)
        values.update(score=best_score, threshold=det.threshold, org_id=batch.events[best_row].org_id)
        hit_times = [float(times[r]) for _, r, _ in hits_of_key]
        findings.append(Finding(det.id, key, [batch.events[r].event_id for _, r, _ in hits_of_key],
                                min(hit_times), max(hit_times), values, best_score))
    return findings
