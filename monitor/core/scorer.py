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

import msgspec
import numpy as np

from monitor.core.batch import EventBatch, field_getter
from monitor.core.detecting import detector_findings
from monitor.core.event import Event, decode_one
from monitor.core.findings import Finding
from monitor.core.keyed import sweep_keys, total_findings, window_findings
from monitor.core.parties import PROFILE_TYPES, PartyRegistry
from monitor.core.reviews import ReviewWatch
from monitor.core.rules import CompiledRule, RulePack
from monitor.core.state import ScorerState

__all__ = ["EventBatch", "Finding", "Scorer", "ScorerState"]

SCREENED_TEXTS = 1 << 14  # listed names whose alert text is remembered


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
        self._advance_org_marks(batch, times, state)
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
                findings += window_findings(rule, batch, selected, state, self._parties)
            else:
                findings += total_findings(rule, batch, selected, state)
        if self.watch is not None:
            findings = self._review_findings(batch, rows, times, state, findings, held)
        self.held_rows = np.flatnonzero(held)
        self.detector_scores = {}
        for det in self.detectors:
            selected = rows[det.when.fn(batch, rows)]
            if len(selected):
                findings += detector_findings(det, batch, selected, state, self.detector_scores)
        if self.watch is not None:
            self._sweep_matters(state)
        sweep_keys(self.rules, state, self.judge_until)
        return findings

    @staticmethod
    def _advance_org_marks(batch: EventBatch, times: np.ndarray, state: ScorerState) -> None:
        """Each org's watermark to its latest business time in the batch. Per org: partitions
        (and so orgs) move through business time at their own pace, and idle state may only
        be judged against its own org."""
        org_marks = state.org_watermarks
        codes, orgs = batch.org_codes()
        latest = np.full(len(orgs), -math.inf)
        np.maximum.at(latest, codes, times)  # one look-up per org, not per row
        for org, t in zip(orgs, latest.tolist()):
            if t > org_marks.get(org, -math.inf):
                org_marks[org] = t

    # the review process --------------------------------------------------------
    def _review_findings(self, batch, rows, times, state: ScorerState, findings: list[Finding], held) -> list[Finding]:
        self.recover_reviews(state)
        selected = rows[self.watch.may_read(batch, rows)]
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
        orgs = set(batch.org_codes()[1]) | self.watch.take_held_back()  # the batch's orgs, each once
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

    # bounded state -------------------------------------------------------------
    def _sweep_matters(self, state: ScorerState) -> None:
        for control in self.controls:
            last = state.swept_at.get(control.id, float("-inf"))
            if state.watermark - last >= max(control.expires / 2, 3600.0):
                state.swept_at[control.id] = state.watermark
                self.watch.forget_idle(state.org_watermarks, state.matters, self.judge_until)
