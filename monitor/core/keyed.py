"""Rules that keep per-key state: windows and running totals, and dropping idle keys. Pure.

``monitor.core.scorer`` selects each rule's rows; here they go into their keys'
state (``monitor.core.state``) and come out as findings.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from itertools import accumulate
from operator import attrgetter, itemgetter

import numpy as np

from monitor.core.batch import EventBatch
from monitor.core.bidscreens import screen
from monitor.core.findings import Finding
from monitor.core.parties import PartyRegistry
from monitor.core.rulelang import aggregate_column
from monitor.core.rules import CompiledRule
from monitor.core.state import KeyTotal, KeyWindow, ScorerState
from monitor.core.tradegraph import CYCLE_FIELDS, closed_cycle, describe_cycle

__all__ = ["sweep_keys", "total_findings", "window_findings"]

# Fields of a running total's entries: (time, event id, value, display values).
_entry_time, _entry_event_id, _entry_value = itemgetter(0), itemgetter(1), itemgetter(2)


class _Table:
    """Columns of the evaluation rows of a window's or total's ``having``."""

    def __init__(self, columns: dict[str, np.ndarray]):
        self.columns = columns

    def column(self, path: str, rows: np.ndarray) -> np.ndarray:
        col = self.columns[path]
        return col if len(rows) == len(col) else col[rows]

    def equals(self, path: str, value, rows: np.ndarray) -> np.ndarray:
        return self.column(path, rows) == value


def _columns(batch: EventBatch, selected: np.ndarray, fields) -> list[list]:
    """The given fields of the selected rows, as Python lists."""
    return [batch.column(f, selected).tolist() for f in fields]


def _column_array(values: list, kind_num: bool) -> np.ndarray:
    if kind_num:
        return np.array(values, dtype=float)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def without_missing_numbers(rule: CompiledRule, batch: EventBatch, selected: np.ndarray) -> np.ndarray:
    """Drop rows whose numeric key fields are missing (NaN); None and ""
    in text fields are caught per row, cheaply, by tuple membership."""
    for path in rule.key:
        if path == "amount":
            selected = selected[~np.isnan(batch.column(path, selected))]
    return selected


def window_findings(rule: CompiledRule, batch: EventBatch, selected: np.ndarray, state: ScorerState,
                    registry: PartyRegistry | None = None) -> list[Finding]:
    """Insert the selected rows into their keys' windows; the findings of the windows
    whose ``having`` holds (``registry``: master data, for ``linked()`` over a window)."""
    selected = without_missing_numbers(rule, batch, selected)
    store = state.windows.setdefault(rule.id, {})
    within, lateness = rule.window_seconds, rule.lateness_seconds
    min_count = rule.min_count
    times = batch.column("occurred_at", selected).tolist()
    ids = batch.column("event_id", selected).tolist()
    keys = list(zip(*_columns(batch, selected, rule.key)))
    aggs = list(zip(*_columns(batch, selected, rule.agg_fields))) if rule.agg_fields else [()] * len(ids)
    disp = list(zip(*_columns(batch, selected, rule.display))) if rule.display else [()] * len(ids)
    pending: list[tuple[tuple, KeyWindow, str, float]] = []  # (key, window, anchor event id, anchor time)
    touched: dict[int, KeyWindow] = {}
    for t, eid, key, agg, shown in zip(times, ids, keys, aggs, disp):
        if None in key or "" in key:
            continue
        w = store.get(key)
        if w is None:
            if min_count > 1:
                # Most keys only ever see one event: keep it as a bare tuple.
                store[key] = (t, eid, agg, shown)
                continue
            w = store[key] = KeyWindow()
        elif type(w) is tuple:
            if w[1] == eid:
                continue
            single = w
            w = store[key] = KeyWindow()
            w.insert(*single)
        if t < w.max_t - within - lateness:
            state.late_events += 1
            continue
        if not w.insert(t, eid, agg, shown):
            continue
        touched[id(w)] = w
        wt = w.times
        if len(wt) < min_count:
            continue
        # The new event is an anchor, and so is every later event whose window now includes it.
        for j in range(len(wt) - 1, -1, -1):
            tj = wt[j]
            if tj < t:
                break
            if tj - t < within and bisect_right(wt, tj) - bisect_right(wt, tj - within) >= min_count:
                pending.append((key, w, w.entries[j][0], tj))
    findings = fire_windows(rule, pending, registry) if pending else []
    # Evict only now: an anchor's window is read above, after the whole batch is in.
    for w in touched.values():
        horizon = w.max_t - within - lateness
        if w.times[0] < horizon:
            w.evict_before(horizon)
    return findings


def fire_windows(rule: CompiledRule, pending, registry: PartyRegistry | None) -> list[Finding]:
    # Aggregates per anchor, then `having` on all of them at once.
    agg_index = {f: i for i, f in enumerate(rule.agg_fields)}
    rows_spans = []
    columns: dict[str, list] = {aggregate_column(fn, f): [] for fn, f in rule.aggregates}
    columns.setdefault("count", [])
    seen = set()
    for key, w, anchor, t in pending:
        if (id(w), anchor) in seen:
            continue
        seen.add((id(w), anchor))
        j = bisect_left(w.times, t)
        while j < len(w.times) and w.times[j] == t and w.entries[j][0] != anchor:
            j += 1
        if j == len(w.times) or w.entries[j][0] != anchor:
            continue
        span = w.span(j, rule.window_seconds)
        entries = [w.entries[i] for i in span]
        columns["count"].append(float(len(entries)))
        link_text = ""
        cycle_ids = None
        for fn, f in rule.aggregates:
            if fn == "count":
                continue
            if fn == "cycle":
                value, link_text, cycle_ids = cycle_in_group(rule, w, span, j)
                columns["cycle"].append(value)
                continue
            vals = [e[1][agg_index[f]] for e in entries]
            if fn == "linked":
                value, link_text = linked_in_group(rule, key, vals, t, registry)
            else:
                value = _aggregate(fn, vals)
            columns[aggregate_column(fn, f)].append(value)
        rows_spans.append((key, w, anchor, j, span, link_text, cycle_ids))
    if not rows_spans:
        return []
    table = {name: np.array(vals, dtype=float) for name, vals in columns.items()}
    for i, path in enumerate(rule.key):
        table[path] = _column_array([k[i] for k, *_ in rows_spans], path == "amount")
    hits = rule.having.fn(_Table(table), np.arange(len(rows_spans)))
    out = []
    for n, (hit, (key, w, anchor, j, span, link_text, cycle_ids)) in enumerate(zip(hits.tolist(), rows_spans)):
        if not hit:
            continue
        values = {name: float(table[name][n]) for name in columns}
        if cycle_ids:
            values["cycle_path"] = link_text
            values.update(zip(rule.key, key))
            values.update(zip(rule.display, w.entries[j][2]))
            times = dict(zip((e[0] for e in w.entries), w.times))
            out.append(Finding(rule.id, key, cycle_ids, times[cycle_ids[0]], times[cycle_ids[-1]], values))
            continue
        if link_text:
            values["linked"] = link_text
        values.update(zip(rule.key, key))
        values.update(zip(rule.display, w.entries[j][2]))
        out.append(Finding(rule.id, key, [w.entries[i][0] for i in span], w.times[span.start], w.times[span.stop - 1], values))
    return out


def total_findings(rule: CompiledRule, batch: EventBatch, selected: np.ndarray, state: ScorerState) -> list[Finding]:
    """Insert the selected rows into their keys' running totals; the findings of the
    adds whose total against the reference in force holds ``having``."""
    selected = without_missing_numbers(rule, batch, selected)
    store = state.totals.setdefault(rule.id, {})
    is_add = rule.add.fn(batch, selected).tolist()
    is_ref = rule.reference.fn(batch, selected).tolist()
    times = batch.column("occurred_at", selected).tolist()
    ids = batch.column("event_id", selected).tolist()
    values = batch.column(rule.value_field, selected).tolist()
    keys = list(zip(*_columns(batch, selected, rule.key)))
    disp = list(zip(*_columns(batch, selected, rule.display))) if rule.display else [()] * len(ids)
    # key -> (state, earliest business time whose running totals changed)
    touched: dict[tuple, tuple[KeyTotal, float]] = {}
    for add, ref, t, eid, v, key, shown in zip(is_add, is_ref, times, ids, values, keys, disp):
        if not (add or ref) or None in key or "" in key:
            continue
        if v != v:  # NaN: no amount
            if not add:
                continue
            v = 0.0
        s = store.get(key)
        if s is None:
            s = store[key] = KeyTotal()
        if not s.insert(bool(add), t, eid, v, shown):
            continue
        # A new first reference changes what is in force for every earlier add too.
        changed_from = -math.inf if (not add and s.refs[0][1] == eid) else t
        previous = touched.get(key)
        touched[key] = (s, changed_from if previous is None else min(previous[1], changed_from))
    # Each add at or after the change is an anchor: its running total
    # against the reference in force at its time. One that fired before
    # fires again only with new evidence (the alert then grows).
    anchors = []
    for key, (s, changed_from) in touched.items():
        if not s.refs:
            continue
        adds = s.adds  # sorted by time
        # A key can hold a year of adds: sum them in C, in order (as a loop would).
        totals = list(accumulate(map(_entry_value, adds)))
        first = 0 if changed_from == -math.inf else bisect_left(adds, changed_from, key=_entry_time)
        for n in range(first, len(adds)):
            anchors.append((key, s, n, totals[n], s.reference_at(adds[n][0])))
    if not anchors:
        return []
    table = {
        "total": np.array([a[3] for a in anchors], dtype=float),
        "reference": np.array([a[4][2] for a in anchors], dtype=float),
        "count": np.array([a[2] + 1 for a in anchors], dtype=float),
    }
    for i, path in enumerate(rule.key):
        table[path] = _column_array([a[0][i] for a in anchors], path == "amount")
    hits = rule.having.fn(_Table(table), np.arange(len(anchors)))
    out = []
    for hit, (key, s, n, running, ref) in zip(hits.tolist(), anchors):
        if not hit:
            continue
        add = s.adds[n]
        values = {"total": running, "reference": ref[2], "count": float(n + 1)}
        values.update(zip(rule.key, key))
        values.update(zip(rule.display, add[3]))
        # The reference and every add up to this one made it; adds are sorted by time.
        event_ids = [ref[1], *map(_entry_event_id, s.adds[: n + 1])]
        out.append(Finding(rule.id, key, event_ids, min(ref[0], s.adds[0][0]), max(ref[0], add[0]), values))
    return out


def linked_in_group(rule: CompiledRule, key: tuple, parties: list, t: float,
                    registry: PartyRegistry | None) -> tuple[float, str]:
    """linked(counterparty_id) of a window: how many of the group's counterparties
    share master data with another, and which pairs share what."""
    if registry is None or "org_id" not in rule.key:
        return 0.0, ""
    pairs = registry.shared_between(key[rule.key.index("org_id")], parties, t)
    linked = {p for a, b, _shared in pairs for p in (a, b)}
    text = "; ".join(f"{a}–{b}: " + ", ".join(f"{k} {v}" for k, v in shared) for a, b, shared in pairs[:3])
    return float(len(linked)), text + (" …" if len(pairs) > 3 else "")


def cycle_in_group(rule: CompiledRule, w: KeyWindow, span: range, anchor: int) -> tuple[float, str, list | None]:
    """cycle of a window: how many parties the goods of the anchor's transfer went
    round (0: none), the path, and the transfers that made it."""
    buyer_at, seller_at = (rule.agg_fields.index(f) for f in CYCLE_FIELDS)
    transfers = [(w.times[i], w.entries[i][1][seller_at], w.entries[i][1][buyer_at], w.entries[i][0]) for i in span]
    found = closed_cycle(transfers, anchor - span.start)
    if found is None:
        return 0.0, "", None
    parties, ids = found
    return float(len(parties)), describe_cycle(parties), ids


def sweep_keys(rules: list[CompiledRule], state: ScorerState, until: float) -> None:
    """Drop idle keys. Runs per rule once business time has moved on by half a window.

    Idle is judged against the key's org's newest event (the worker keeps it
    with the state), and the schedule is the scorer's own. So
    when an org's events arrive more than a window (plus lateness) out of
    order — a backfill of an old quarter — whether a late event still finds
    its key can differ between a restarted worker and one that ran through.
    Nothing is judged idle past ``until`` (the scorer's ``judge_until``): a worker
    reading one topic ahead of another keeps the keys the other's unread events may still meet.
    """
    for rule in rules:
        if rule.kind == "window":
            horizon = rule.window_seconds + rule.lateness_seconds
            store = state.windows.get(rule.id)
        elif rule.kind == "total":
            horizon = rule.expires_seconds
            store = state.totals.get(rule.id)
        else:
            continue
        if not store:
            continue
        every = max(horizon / 2, 3600.0)
        last = state.swept_at.get(rule.id, float("-inf"))
        if state.watermark - last < every:
            continue
        state.swept_at[rule.id] = state.watermark
        last_seen = _window_last_seen if rule.kind == "window" else _total_last_seen
        # a table-backed store reads the time off each entry without decoding it whole
        seen = store.last_seen_items(last_seen) if hasattr(store, "last_seen_items") else (
            (k, last_seen(v)) for k, v in store.items())
        if "org_id" in rule.key:
            # Per org; an org with no stream time known keeps its state.
            org_at = rule.key.index("org_id")
            cutoffs = {org: min(mark, until) - horizon for org, mark in state.org_watermarks.items()}
            stale = [k for k, t in seen if t < cutoffs.get(k[org_at], -math.inf)]
        else:
            cutoff = min(state.watermark, until) - horizon
            stale = [k for k, t in seen if t < cutoff]
        for k in stale:
            del store[k]


def _window_last_seen(w) -> float:
    return w[0] if type(w) is tuple else w.max_t  # a key seen once is a bare tuple


_total_last_seen = attrgetter("last_t")


def _aggregate(fn: str, values: list) -> float:
    if fn == "sum":
        return float(sum(v for v in values if v == v))
    if fn == "min":
        return float(min(values)) if values else math.nan
    if fn == "max":
        return float(max(values)) if values else math.nan
    if fn == "distinct":
        return float(len({v for v in values if v is not None}))
    return screen(fn, values)  # the bid screens, ties and steps (monitor.core.bidscreens)
