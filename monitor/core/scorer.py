"""The scorer: a batch of events and the state in, findings out. No I/O.

>>> from monitor.packs.rulefiles import load_pack, default_rules_dir
>>> from monitor.core.event import decode_lines
>>> pack = load_pack(default_rules_dir())
>>> events, _ = decode_lines([b'{"event_id":"c1","source":"erp","domain":"procurement",'
...     b'"type":"contract_signed","occurred_at":"2026-03-02T10:00:00+08:00","org_id":"ORG01",'
...     b'"amount":300000,"counterparty_id":"S1","attributes":{"contract_id":"HT1","legal_review":"none"}}'])
>>> scorer = Scorer(pack)
>>> [f.rule_id for f in scorer.score(EventBatch(events), ScorerState())]
['proc_contract_without_legal_review']
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from itertools import accumulate
from operator import attrgetter, itemgetter

import msgspec
import numpy as np

from monitor.core.batch import EventBatch, field_getter
from monitor.core.bidscreens import screen
from monitor.core.detecting import detector_findings
from monitor.core.event import Event, decode_one
from monitor.core.findings import Finding
from monitor.core.parties import PROFILE_TYPES, PartyRegistry
from monitor.core.reviews import ReviewWatch
from monitor.core.rulelang import aggregate_column
from monitor.core.rules import CompiledRule, RulePack
from monitor.core.state import KeyTotal, KeyWindow, ScorerState
from monitor.core.tradegraph import CYCLE_FIELDS, closed_cycle, describe_cycle

__all__ = ["EventBatch", "Finding", "Scorer", "ScorerState"]

SCREENED_TEXTS = 1 << 14  # listed names whose alert text is remembered

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


class Scorer:
    """Scores batches with a compiled pack. Rules with status ``draft`` are
    skipped unless ``statuses`` names them (a rule's own test cases do)."""

    def __init__(self, pack: RulePack, statuses: tuple[str, ...] = ("live", "shadow")):
        self.pack = pack
        self.rules = [r for r in pack.rules if r.status in statuses]
        self.detectors = [d for d in pack.detectors if d.status in statuses]
        self.detector_scores: dict[str, np.ndarray] = {}  # the last batch's scores, per detector (for metrics)
        self.held_rows = np.zeros(0, dtype=np.int64)  # the last batch's rows held by stateful rules
        self.controls = [c for c in pack.controls if c.status in statuses]
        self.watch = ReviewWatch(self.controls) if self.controls else None
        self._watched_types = sorted({t for c in self.controls for t in c.watched_types})
        self._superseding = {}  # flag rule id -> the controls that supersede it
        for c in self.controls:
            for rule_id in c.supersedes:
                self._superseding.setdefault(rule_id, []).append(c)
        self._watching = None  # the state whose matters the watch's schedule was built from
        # Master data is kept only when a rule asks about it (linked()).
        self.uses_parties = any(r.when.links or any(fn == "linked" for fn, _f in getattr(r, "aggregates", ()))
                                for r in self.rules)
        self._parties: PartyRegistry | None = None
        # Event rules asking linked() judge an event only once every input has been
        # read up to its business time (``judge_until``): master data may come on
        # another topic, read behind this one. Until then the event waits in state.
        self.link_rules = [r for r in self.rules if r.kind == "event" and r.when.links]
        self._link_parties = sorted({path for r in self.link_rules for path, _d in r.when.links if path})
        self._waiting: dict[tuple, float] | None = None  # (org, event id) -> business time, of ``state.waiting``
        self._waiting_of: ScorerState | None = None
        self.released_events: list[Event] = []  # the waiting events the last score() judged
        self._screened_texts: dict[tuple, str] = {}  # (list, what screen() found) -> the alert's words
        # How far review checks may judge in business time: the oldest stream time among
        # inputs with records still unread (a worker catching up sets it; see monitor.core.reviews).
        self.judge_until = math.inf

    def score(self, batch: EventBatch, state: ScorerState) -> list[Finding]:
        if not len(batch):
            return []
        rows = batch.all_rows
        times = batch.column("occurred_at", rows)
        state.watermark = max(state.watermark, float(times.max()))
        # Per org too: partitions (and so orgs) move through business time at
        # their own pace, and idle state may only be judged against its own org.
        org_marks = state.org_watermarks
        for org, t in zip(batch.column("org_id", rows).tolist(), times.tolist()):
            if t > org_marks.get(org, -math.inf):
                org_marks[org] = t
        if self.uses_parties:
            self._parties = batch.parties = self._learn_parties(batch, rows, state)
        findings: list[Finding] = []
        held = np.zeros(len(batch), dtype=bool)  # rows a stateful rule keeps: later evidence
        link_rows = rows
        self.released_events = []
        if self.link_rules:
            link_rows = self._wait_for_master_data(batch, rows, times, state)
            findings += self._judge_waiting(state)
        for rule in self.rules:
            if rule.when.links and rule.kind == "event":
                selected = link_rows[rule.when.fn(batch, link_rows)] if len(link_rows) else link_rows
            else:
                selected = rows[rule.when.fn(batch, rows)]
            for _exc, where in rule.exceptions:
                if not len(selected):
                    break
                selected = selected[~where.fn(batch, selected)]
            if not len(selected):
                continue
            if rule.kind == "event":
                findings += self._event_findings(rule, batch, selected)
                continue
            held[selected] = True
            if rule.kind == "window":
                findings += self._window_findings(rule, batch, selected, state)
            else:
                findings += self._total_findings(rule, batch, selected, state)
        if self.watch is not None:
            findings = self._review_findings(batch, rows, times, state, findings, held)
        self.held_rows = np.flatnonzero(held)
        self.detector_scores = {}
        for det in self.detectors:
            selected = rows[det.when.fn(batch, rows)]
            if len(selected):
                findings += detector_findings(det, batch, selected, state, self.detector_scores)
        self._sweep(state)
        return findings

    # the review process --------------------------------------------------------
    def _review_findings(self, batch, rows, times, state: ScorerState, findings: list[Finding], held) -> list[Finding]:
        self.recover_reviews(state)
        watched = np.zeros(len(batch), dtype=bool)
        for kind in self._watched_types:
            watched |= batch.equals("type", kind, rows)
        selected = rows[watched]
        if len(selected):
            held[selected] = True  # the events behind a review ticket are its evidence
            events = batch.events
            nan = math.nan
            items = [{"event_id": e.event_id, "type": e.type, "org_id": e.org_id, "t": t,
                      "amount": nan if e.amount is None else e.amount, "attributes": e.attributes}
                     for e, t in zip(map(events.__getitem__, selected.tolist()), times[selected].tolist())]
            findings += self.watch.apply(items, state.matters, self.judge_until)
            if self._superseding:
                findings = [f for f in findings if not self._superseded(f, state)]
        orgs = set(batch.column("org_id", rows).tolist()) | self.watch.take_held_back()
        marks = state.org_watermarks
        return findings + self.watch.advance({org: marks.get(org, -math.inf) for org in sorted(orgs)}, state.matters,
                                             self.judge_until)

    def _superseded(self, finding: Finding, state: ScorerState) -> bool:
        """A flag rule's finding on a matter a review control follows: the control judges it."""
        controls = self._superseding.get(finding.rule_id)
        if not controls:
            return False
        rule = self.pack.rule(finding.rule_id)
        for control in controls:
            if control.matter_id in rule.key and "org_id" in rule.key:
                key = (finding.key[rule.key.index("org_id")], str(finding.key[rule.key.index(control.matter_id)]))
                if finding.first_seen > self.judge_until:
                    self.watch.defer(control, key, finding, state.matters)  # the OA's topic may not be read that far
                    return True
                if self.watch.claim(control, key, state.matters, at=finding.first_seen):
                    return True
        return False

    def recover_reviews(self, state: ScorerState) -> None:
        """Build the review checks' schedule from ``state`` when it is not the
        state the schedule was built from (a restart, a rebalance)."""
        if self.watch is not None and self._watching is not state:
            self.watch.restore(state.matters)
            self._watching = state

    def advance_time(self, state: ScorerState, org_marks: dict[str, float]) -> list[Finding]:
        """Let stream time reach ``org_marks`` with no event (a topic gone quiet):
        what falls due is judged, e.g. a review step past its limit."""
        if self.watch is None:
            return []
        self.recover_reviews(state)
        # The orgs' watermarks stay where the events left them: the windows'
        # lateness is judged against business time, not the clock.
        return self.watch.advance(org_marks, state.matters, self.judge_until)

    def take_judgements(self) -> list:
        """The executed matters the review controls judged since last asked (for the review rate)."""
        if self.watch is None or not self.watch.judged:
            return []
        judged, self.watch.judged = self.watch.judged, []
        return judged

    def reviews_pending(self, state: ScorerState) -> set[str]:
        """Orgs with review checks waiting for time to pass."""
        if self.watch is None:
            return set()
        self.recover_reviews(state)
        return self.watch.pending_orgs()

    def forget_reviews(self) -> None:
        """The state was reloaded (a rebalance): rebuild the schedule, and the index of
        the events waiting for master data, from it at next use."""
        self._watching = None
        self._waiting = None

    # master data -----------------------------------------------------------
    @staticmethod
    def _learn_parties(batch: EventBatch, rows: np.ndarray, state: ScorerState) -> PartyRegistry:
        """Keep the batch's supplier and employee profiles (monitor.core.parties)."""
        registry = PartyRegistry(state.party_records, state.party_index)
        for event_type, (kind, id_attribute) in PROFILE_TYPES.items():
            for row in rows[batch.equals("type", event_type, rows)].tolist():
                e = batch.events[row]
                party_id = e.counterparty_id if id_attribute is None else batch.value(f"attributes.{id_attribute}", row)
                if party_id:
                    name = e.counterparty_name if id_attribute is None else None
                    registry.apply(e.org_id, kind, party_id, e.occurred_at.timestamp(), e.attributes, name)
        return registry

    def _wait_for_master_data(self, batch: EventBatch, rows, times, state: ScorerState) -> np.ndarray:
        """Keep back, in ``state.waiting``, the rows that a linked() rule may judge and
        that lie past ``judge_until``; the rows to judge now."""
        if self.judge_until == math.inf:
            return rows
        waiting = self._waiting_index(state)
        later = times > self.judge_until
        if self._link_parties:
            has_party = np.zeros(len(rows), dtype=bool)
            for path in self._link_parties:
                has_party |= np.array([bool(v) for v in batch.column(path, rows).tolist()], dtype=bool)
            later &= has_party
        for row in rows[later].tolist():
            e = batch.events[row]
            key = (e.org_id, e.event_id)
            if key not in waiting:
                t = e.occurred_at.timestamp()
                state.waiting[key] = [t, msgspec.json.encode(e)]
                waiting[key] = t
        return rows[~later]

    def _waiting_index(self, state: ScorerState) -> dict[tuple, float]:
        if self._waiting_of is not state or self._waiting is None:
            self._waiting = {key: value[0] for key, value in state.waiting.items()}  # a restart: read once
            self._waiting_of = state
        return self._waiting

    def _judge_waiting(self, state: ScorerState) -> list[Finding]:
        """Judge the waiting events whose business time every input has now reached."""
        waiting = self._waiting_index(state)
        due = [key for key, t in waiting.items() if t <= self.judge_until]
        if not due:
            return []
        events = []
        for key in due:
            entry = state.waiting.get(key)
            del waiting[key]
            if entry is not None:
                del state.waiting[key]
                decoded = decode_one(entry[1])
                if isinstance(decoded, Event):
                    events.append(decoded)
        events.sort(key=lambda e: e.occurred_at.timestamp())
        self.released_events = events  # the evidence of what they raise: they are in no batch
        batch = EventBatch(events)
        # this state's master data, also for the messages' {linked} (released by the clock after a
        # restart, no batch has set it; an older one may belong to a state since reloaded)
        batch.parties = self._parties = PartyRegistry(state.party_records, state.party_index)
        rows = batch.all_rows
        findings = []
        for rule in self.link_rules:
            selected = rows[rule.when.fn(batch, rows)]
            for _exc, where in rule.exceptions:
                selected = selected[~where.fn(batch, selected)] if len(selected) else selected
            if len(selected):
                findings += self._event_findings(rule, batch, selected)
        return findings

    def release_waiting(self, state: ScorerState) -> list[Finding]:
        """Judge the waiting events ``judge_until`` has passed, with no new batch (the
        inputs caught up at the end of a stream): their findings; the events are
        ``released_events``."""
        self.released_events = []
        if not self.link_rules or not self._waiting_index(state):
            return []
        return self._judge_waiting(state)

    def waiting_count(self, state: ScorerState) -> int:
        """Events held back until master data on every input has caught up with them."""
        return len(self._waiting_index(state)) if self.link_rules else 0

    def _linking(self, rule: CompiledRule, batch: EventBatch, row: int) -> str | None:
        """Who a linked() counterparty is linked to, and by which details."""
        if self._parties is None:
            return None
        e = batch.events[row]
        t = e.occurred_at.timestamp()
        for path, department_path in rule.when.links:
            party = batch.value(path, row) if path else None
            department = batch.value(department_path, row) if department_path else None
            if party and (department_path is None or department):
                links = self._parties.employee_links(e.org_id, party, t, department)
                if links:
                    return "; ".join(link.describe() for link in links[:3]) + (" …" if len(links) > 3 else "")
        return None

    def _linked_in_group(self, rule: CompiledRule, key: tuple, parties: list, t: float) -> tuple[float, str]:
        """linked(counterparty_id) of a window: how many of the group's counterparties
        share master data with another, and which pairs share what."""
        if self._parties is None or "org_id" not in rule.key:
            return 0.0, ""
        pairs = self._parties.shared_between(key[rule.key.index("org_id")], parties, t)
        linked = {p for a, b, _shared in pairs for p in (a, b)}
        text = "; ".join(f"{a}–{b}: " + ", ".join(f"{k} {v}" for k, v in shared) for a, b, shared in pairs[:3])
        return float(len(linked)), text + (" …" if len(pairs) > 3 else "")

    @staticmethod
    def _cycle_in_group(rule: CompiledRule, w: KeyWindow, span: range, anchor: int) -> tuple[float, str, list | None]:
        """cycle of a window: how many parties the goods of the anchor's transfer went
        round (0: none), the path, and the transfers that made it."""
        buyer_at, seller_at = (rule.agg_fields.index(f) for f in CYCLE_FIELDS)
        transfers = [(w.times[i], w.entries[i][1][seller_at], w.entries[i][1][buyer_at], w.entries[i][0]) for i in span]
        found = closed_cycle(transfers, anchor - span.start)
        if found is None:
            return 0.0, "", None
        parties, ids = found
        return float(len(parties)), describe_cycle(parties), ids

    # stateless rules -------------------------------------------------------
    def _event_findings(self, rule: CompiledRule, batch: EventBatch, selected: np.ndarray) -> list[Finding]:
        out = []
        times = batch.column("occurred_at", selected)
        events = batch.events
        keys = [field_getter(p) for p in rule.key]
        shown = [(f, field_getter(f)) for f in rule.message.fields if f not in ("screened", "linked")]
        for row, t in zip(selected.tolist(), times.tolist()):
            event = events[row]
            values = {f: get(event) for f, get in shown}
            values["org_id"] = event.org_id
            if rule.when.screens:
                values["screened"] = self._screening(rule, batch, row)
            if rule.when.links:
                values["linked"] = self._linking(rule, batch, row)
            out.append(Finding(rule.id, tuple([get(event) for get in keys]), [event.event_id], t, t, values))
        return out

    def _screening(self, rule: CompiledRule, batch: EventBatch, row: int) -> str | None:
        """Which list entry a screened() name matched, its score and why (from the list's memo)."""
        for path, list_name, threshold in rule.when.screens:
            name = batch.value(path, row) if path else None
            found = self.pack.lists[list_name].screen(name, threshold)
            if found is not None:
                return self._screened_text(list_name, found)
        return None

    def _screened_text(self, list_name: str, found: tuple) -> str:
        text = self._screened_texts.get((list_name, found))
        if text is None:  # the same at every payment to a listed name: written once
            if len(self._screened_texts) >= SCREENED_TEXTS:
                self._screened_texts.clear()
            position, match = found
            lst = self.pack.lists[list_name]
            listed = lst.value(position, "counterparty_id") or f"row {position + 2}"  # the CSV's line, after the header
            text = self._screened_texts[(list_name, found)] = (
                f"{match.entry} ({list_name} {listed}, {match.score:.0f}/100: {match.why})")
        return text

    # windows -----------------------------------------------------------------
    def _without_missing_numbers(self, rule, batch, selected):
        """Drop rows whose numeric key fields are missing (NaN); None and ""
        in text fields are caught per row, cheaply, by tuple membership."""
        for path in rule.key:
            if path == "amount":
                selected = selected[~np.isnan(batch.column(path, selected))]
        return selected

    def _window_findings(self, rule, batch, selected, state: ScorerState) -> list[Finding]:
        selected = self._without_missing_numbers(rule, batch, selected)
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
        findings = self._fire_windows(rule, pending) if pending else []
        # Evict only now: an anchor's window is read above, after the whole batch is in.
        for w in touched.values():
            horizon = w.max_t - within - lateness
            if w.times[0] < horizon:
                w.evict_before(horizon)
        return findings

    def _fire_windows(self, rule: CompiledRule, pending) -> list[Finding]:
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
                    value, link_text, cycle_ids = self._cycle_in_group(rule, w, span, j)
                    columns["cycle"].append(value)
                    continue
                vals = [e[1][agg_index[f]] for e in entries]
                if fn == "linked":
                    value, link_text = self._linked_in_group(rule, key, vals, t)
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

    # totals ------------------------------------------------------------------
    def _total_findings(self, rule, batch, selected, state: ScorerState) -> list[Finding]:
        selected = self._without_missing_numbers(rule, batch, selected)
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

    # bounded state -------------------------------------------------------------
    def _sweep_matters(self, state: ScorerState) -> None:
        for control in self.controls:
            last = state.swept_at.get(control.id, float("-inf"))
            if state.watermark - last >= max(control.expires / 2, 3600.0):
                state.swept_at[control.id] = state.watermark
                self.watch.forget_idle(state.org_watermarks, state.matters, self.judge_until)

    def _sweep(self, state: ScorerState) -> None:
        """Drop idle keys. Runs per rule once business time has moved on by half a window.

        Idle is judged against the key's org's newest event (the worker keeps it
        with the state), and the schedule is this scorer's own. So
        when an org's events arrive more than a window (plus lateness) out of
        order — a backfill of an old quarter — whether a late event still finds
        its key can differ between a restarted worker and one that ran through.
        Nothing is judged idle past ``judge_until``: a worker reading one topic
        ahead of another keeps the keys the other's unread events may still meet.
        """
        until = self.judge_until
        if self.watch is not None:
            self._sweep_matters(state)
        for rule in self.rules:
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
            if "org_id" in rule.key:
                # Per org; an org with no stream time known keeps its state.
                org_at = rule.key.index("org_id")
                cutoffs = {org: min(mark, until) - horizon for org, mark in state.org_watermarks.items()}
                stale = [k for k, v in store.items() if last_seen(v) < cutoffs.get(k[org_at], -math.inf)]
            else:
                cutoff = min(state.watermark, until) - horizon
                stale = [k for k, v in store.items() if last_seen(v) < cutoff]
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
