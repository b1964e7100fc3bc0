"""The watch over the review-process control list (``monitor.core.controls``). Pure.

The office/approval system (OA) sends the review process as events:
``matter_submitted`` and ``review_step``; the business systems send the
executions they already send (``contract_signed`` …). The watch keeps, per control and matter, what has happened to the matter
(``Matter``) and reports six kinds of breach as findings:

=================  =============================================================
``executed_early``  executed before a required step passed
``after_reject``    executed after a rejection, or after a conditional opinion
                    with no passed follow-up step
``wrong_post``      a step done by another post than the list names
``own_draft``       a step done by the matter's own drafter
``out_of_order``    a step passed before the steps the list puts ahead of it
``changed``         a material change after review with no new review in time
``silent``          a step not done within its limit while the matter waits
=================  =============================================================

Checks that could be undone by a late event (a review that happened before
the signing but arrives after it) wait until the org's stream time has passed
their moment by the control's ``lateness``; silence is judged the same way, so
it fires on time passing, once, and not again after a restart (what was found
is part of the matter's state).

Stream time is an org's newest business time, capped by ``until``: the
oldest stream time among inputs that still hold unread records (a worker
catching up on four topics reads one ahead of another; without the cap a
signing still unread on one topic would be judged missing by the time
another topic has reached). A flag rule's finding on a matter the OA may yet
mention waits the same way (``defer``) before the control claims it or lets it stand.

>>> from monitor.core.controls import ControlSpec, StepSpec, compile_control_spec
>>> control = compile_control_spec(ControlSpec(
...     control="RC-CON-01", title="t", matter_kind="contract", risk="CON-01",
...     steps=[StepSpec(step="legal_review", post="legal_compliance_officer", within="5d")]))
>>> watch = ReviewWatch([control])
>>> [c.id for c in watch.controls]
['RC-CON-01']
"""

from __future__ import annotations

import heapq
import math
from bisect import insort
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.core.controls import BREACHES, REVIEW_KINDS, CompiledControl, CompiledStep
from monitor.core.findings import Finding

if TYPE_CHECKING:
    from monitor.core.batch import EventBatch

__all__ = ["Judgement", "Matter", "MatterProcess", "ReviewWatch", "insort_mark", "review_rates"]

_MARK_ORDER = itemgetter(0, 1)  # (business time, event id)


def insort_mark(marks: list[tuple], mark: tuple) -> None:
    """Put ``mark`` in its place among ``marks``, kept sorted by (time, event id), after
    any equal: as appending and sorting again would, without sorting a matter's whole
    history at each of its events.

    >>> marks = [(1.0, "a", "stage", "initiation"), (3.0, "c", "disbursed", 5.0)]
    >>> insort_mark(marks, (2.0, "b", "approval", None))
    >>> [m[1] for m in marks]
    ['a', 'b', 'c']
    """
    insort(marks, mark, key=_MARK_ORDER)

# --- a matter's history ------------------------------------------------------------------

class Matter:
    """What happened to one matter, as far as one control cares; plain-serialisable.

    ``steps`` hold ``(t, event_id, step, post, reviewer, opinion, opinion_no)``;
    ``changes`` hold ``(t, event_id, amount)``. ``found`` are the breaches
    already reported, so none is reported twice.
    """

    __slots__ = ("submitted", "steps", "executed", "changes", "amount", "attrs", "found", "flagged", "last_t", "ids",
                 "deferred", "marks")

    def __init__(self) -> None:
        self.submitted: tuple | None = None  # (t, event_id, drafter)
        self.steps: list[tuple] = []
        self.executed: tuple | None = None  # (t, event_id, amount)
        self.changes: list[tuple] = []
        self.amount: float | None = None  # as submitted or executed: what the review saw
        self.attrs: dict[str, str] = {}  # the values of the attributes the control's ``only`` names
        self.found: set[str] = set()
        self.flagged = False  # a flag rule already holds the execution's ticket
        self.last_t = -math.inf
        self.ids: set[str] = set()
        # flag rules' findings waiting to be claimed or let stand: [rule, key, event ids, first, last, values]
        self.deferred: list[list] = []
        # what a MatterProcess keeps, in business order: (t, event_id, what, ...) — a project's stages
        # and disbursements, a case's statuses
        self.marks: list[tuple] = []

    def to_plain(self) -> list:
        return [self.submitted, self.steps, self.executed, self.changes, self.amount, self.attrs,
                sorted(self.found), self.flagged, self.last_t, self.deferred, self.marks]

    @classmethod
    def from_plain(cls, plain: list) -> Matter:
        m = cls()
        sub, steps, executed, changes, m.amount, m.attrs, found, m.flagged, m.last_t = plain[:9]
        m.deferred = [list(f) for f in plain[9]] if len(plain) > 9 else []
        m.marks = [tuple(k) for k in plain[10]] if len(plain) > 10 else []
        m.submitted = tuple(sub) if sub else None
        m.steps = [tuple(s) for s in steps]
        m.executed = tuple(executed) if executed else None
        m.changes = [tuple(c) for c in changes]
        m.found = set(found)
        m.ids = {s[1] for s in m.steps} | {c[1] for c in m.changes}
        for one in (m.submitted, m.executed):
            if one:
                m.ids.add(one[1])
        m.ids.update(k[1] for k in m.marks)
        return m

    def opinions(self, step: str, until: float = math.inf) -> list[tuple]:
        return [s for s in self.steps if s[2] == step and s[0] <= until]

    def passed(self, step: str, since: float = -math.inf, until: float = math.inf) -> tuple | None:
        """The first passing opinion of ``step`` in [since, until], if any."""
        return next((s for s in self.steps if s[2] == step and s[5] == "pass" and since <= s[0] <= until), None)


# --- the watch ---------------------------------------------------------------------------

class _Due:
    """Checks waiting for stream time: per control and org, a heap of (time, key),
    so that judging an org costs what is due in it, whatever the other orgs hold."""

    def __init__(self) -> None:
        self.heaps: dict[str, list[tuple[float, tuple]]] = {}

    def push(self, t: float, key: tuple) -> None:
        heapq.heappush(self.heaps.setdefault(key[0], []), (t, key))

    def pop_due(self, org: str, now: float) -> list[tuple]:
        heap = self.heaps.get(org)
        keys = []
        while heap and heap[0][0] <= now:
            keys.append(heapq.heappop(heap)[1])
        if heap is not None and not heap:
            del self.heaps[org]  # the orgs held are those with something waiting
        return list(dict.fromkeys(keys))

    def next_at(self, org: str) -> float:
        heap = self.heaps.get(org)
        return heap[0][0] if heap else math.inf


@dataclass(frozen=True)
class Judgement:
    """One executed matter, judged: were all its required steps passed before execution?"""

    control: str
    org_id: str
    matter_id: str
    matter_kind: str
    executed_at: float  # epoch seconds
    reviewed: bool


def review_rates(judgements: list[Judgement]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(org, matter kind, month in China Standard Time) -> (reviewed, executed): 审查率.

    >>> review_rates([Judgement("RC", "SUB01", "HT1", "contract", 1772413200.0, True),
    ...               Judgement("RC", "SUB01", "HT2", "contract", 1772413200.0, False)])
    {('SUB01', 'contract', '2026-03'): (1, 2)}
    """
    import datetime as dt

    cst = dt.timezone(dt.timedelta(hours=8))
    out: dict[tuple[str, str, str], list[int]] = {}
    for j in judgements:
        if j.matter_kind not in REVIEW_KINDS:
            continue  # a project's moves, key-post staff's training: rates of their own
        month = dt.datetime.fromtimestamp(j.executed_at, cst).strftime("%Y-%m")
        row = out.setdefault((j.org_id, j.matter_kind, month), [0, 0])
        row[0] += j.reviewed
        row[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


class MatterProcess:
    """How a kind of matter that is not a review before execution is kept and
    judged, inside the same watch (keyed state per matter, checks due by stream
    time, what was found kept with the matter). A subclass says which events it
    reads, how they key a matter, what an event does to the matter, and what
    falls due when; ``ReviewWatch.report`` makes its findings."""

    event_types: tuple[str, ...] = ()

    def key(self, control: CompiledControl, row: dict) -> tuple | None:
        raise NotImplementedError

    def on_event(self, watch: ReviewWatch, control: CompiledControl, key: tuple, m: Matter,
                 row: dict) -> list[Finding]:
        raise NotImplementedError

    def judge(self, watch: ReviewWatch, control: CompiledControl, key: tuple, m: Matter, now: float) -> list[Finding]:
        raise NotImplementedError

    def due(self, control: CompiledControl, m: Matter) -> list[float]:
        """The moments the matter's checks fall due (the schedule rebuilt after a restart)."""
        raise NotImplementedError

    def watched(self, watch: ReviewWatch, control: CompiledControl, m: Matter) -> bool:
        """Whether the control is about this matter (default: its amount and attributes, ``applies``)."""
        return watch.applies(control, m)

    def may_key(self, control: CompiledControl, kind: str, batch: EventBatch, rows: np.ndarray) -> np.ndarray:
        """Which of a batch's rows of type ``kind`` ``key`` may give a matter, on the columns at
        once (default: all). It may say yes too often, never no too often: ``key`` still decides."""
        return np.ones(len(rows), dtype=bool)

    @staticmethod
    def note(control: CompiledControl, m: Matter, row: dict) -> None:
        """Keep what ``applies`` asks: the largest amount, the latest value of each attribute named."""
        amount = row["amount"]
        if amount is not None and not math.isnan(amount) and (m.amount is None or amount > m.amount):
            m.amount = amount
        attrs = row["attributes"]
        for name in (*(control.only or ()), *(control.unless or ()), *control.watch_if):
            value = attrs.get(name)
            if isinstance(value, (str, bool)) and value != "":
                m.attrs[name] = value


class ReviewWatch:
    """Applies events to the matters of each control and reports breaches.

    ``matters`` maps control id -> {(org_id, matter_id): Matter}; pass the
    same mapping to every call (it is the state). ``advance(org_marks)``
    judges what stream time has made due: call it after each batch with the
    newest business time of each org the batch held (or the clock, for an org
    gone quiet).
    """

    def __init__(self, controls: list[CompiledControl]):
        self.controls = controls
        self._due: dict[str, _Due] = {c.id: _Due() for c in controls}
        # what waits for every input to be read past its time, not for stream time:
        # a step's own checks, a flag rule's finding waiting to be claimed
        self._read_due: dict[str, _Due] = {c.id: _Due() for c in controls}
        # orgs with a check their own stream time has passed but ``until`` held back: judge them when it moves
        self.held_back: set[str] = set()
        self._until = math.inf
        # executions judged since last taken: what the review rate (审查率) counts
        self.judged: list[Judgement] = []
        # event type -> the controls that read it, in list order (a payment reaches only the key-post control)
        self._readers: dict[str, list[CompiledControl]] = {}
        for control in controls:
            for kind in control.watched_types:
                self._readers.setdefault(kind, []).append(control)

    # events in ------------------------------------------------------------------------------
    def may_read(self, batch: EventBatch, rows: np.ndarray) -> np.ndarray:
        """Which rows some control may read, for ``apply``: of a watched type, and not ruled
        out by every process reading the type (most payments approved off a key post)."""
        out = np.zeros(len(rows), dtype=bool)
        for kind, readers in self._readers.items():
            at = np.flatnonzero(batch.equals("type", kind, rows))  # positions in ``rows``
            if not len(at):
                continue
            kept = np.zeros(len(at), dtype=bool)
            for control in readers:
                if control.process is None:
                    kept[:] = True
                    break
                kept |= control.process.may_key(control, kind, batch, rows[at])
            out[at[kept]] = True
        return out

    def apply(self, rows: list[dict[str, Any]], matters: dict[str, dict[tuple, Matter]],
              until: float = math.inf) -> list[Finding]:
        """Fold events in (dicts with event_id, type, org_id, t, amount, attributes), in business order.
        A step's own checks (post, drafter, order) are made at once when every
        input has been read past it (``until``), else once they are."""
        self._until = until
        findings: list[Finding] = []
        readers = self._readers
        for row in sorted(rows, key=lambda r: r["t"]):
            for control in readers.get(row["type"], ()):
                process = control.process
                key = self._key(control, row) if process is None else process.key(control, row)
                if key is None:
                    continue
                store = matters.setdefault(control.id, {})
                matter = store.get(key)
                if matter is None:
                    matter = store[key] = Matter()
                if row["event_id"] in matter.ids:
                    continue  # delivered again
                matter.ids.add(row["event_id"])
                matter.last_t = max(matter.last_t, row["t"])
                findings += (self._on_event(control, key, matter, row) if process is None else
                             process.on_event(self, control, key, matter, row))
        return findings

    def _key(self, control: CompiledControl, row: dict) -> tuple | None:
        attrs = row["attributes"]
        kind = row["type"]
        if kind in ("matter_submitted", "review_step"):
            if attrs.get("matter_kind") != control.matter_kind:
                return None
            matter_id = attrs.get("matter_id")
        elif kind in control.executed_by or kind in control.changed_by:
            matter_id = attrs.get(control.matter_id.removeprefix("attributes."))
        else:
            return None
        if matter_id is None or matter_id == "":
            return None
        return (row["org_id"], str(matter_id))

    def _on_event(self, control: CompiledControl, key: tuple, m: Matter, row: dict) -> list[Finding]:
        attrs, t, eid = row["attributes"], row["t"], row["event_id"]
        out: list[Finding] = []
        kind = row["type"]
        if kind == "matter_submitted":
            m.submitted = (t, eid, _text(attrs.get("drafter_id")))
            self._note(control, m, row)
            for s in control.steps:
                if s.within is not None:
                    self._due[control.id].push(t + s.within + control.lateness, key)
            out += self._step_checks(control, key, m, self._until, order=False)
        elif kind == "review_step":
            step = (t, eid, _text(attrs.get("step")), _text(attrs.get("reviewer_post")), _text(attrs.get("reviewer_id")),
                    _text(attrs.get("opinion")), _text(attrs.get("opinion_no")))
            insort(m.steps, step)
            if t <= self._until:
                out += self._reviewer_checks(control, key, m, step)
                out += self._order_check(control, key, m, step)
            else:  # an input is not read that far yet: checked once it is
                self._read_due[control.id].push(t, key)
        elif kind in control.executed_by:
            first = m.executed is None
            if first or t < m.executed[0]:
                m.executed = (t, eid, row["amount"])
            self._note(control, m, row)
            self._due[control.id].push(t + control.lateness, key)
            if first:  # executed after a step went silent: the silence's ticket gets the execution too
                out += [f for s in control.steps if f"silent:{s.step}" in m.found
                        for f in self._silent(control, key, m, s, again=True)]
        elif kind in control.changed_by:
            m.changes.append((t, eid, row["amount"]))
            if control.change is not None:
                self._due[control.id].push(t + control.change[2] + control.lateness, key)
        return out

    @staticmethod
    def _note(control: CompiledControl, m: Matter, row: dict) -> None:
        if m.amount is None and row["amount"] is not None and not math.isnan(row["amount"]):
            m.amount = row["amount"]
        for name in control.only or ():
            value = row["attributes"].get(name)
            if name not in m.attrs and isinstance(value, str):
                m.attrs[name] = value

    @staticmethod
    def applies(control: CompiledControl, m: Matter) -> bool:
        """Whether the matter is one this control is about (its amount, its kind)."""
        if control.unless and any(m.attrs.get(name) in values for name, values in control.unless.items()):
            return False
        if not all(m.attrs.get(name) in values for name, values in (control.only or {}).items()):
            return False
        if any(m.attrs.get(name) is True for name in control.watch_if):
            return True
        return control.min_amount is None or (m.amount is not None and m.amount >= control.min_amount)

    def schedule(self, control: CompiledControl, at: float, key: tuple) -> None:
        """A MatterProcess's check on the matter ``key`` falls due when its org's stream time reaches ``at``."""
        self._due[control.id].push(at, key)

    def report(self, control: CompiledControl, key: tuple, m: Matter, mark: str, event_ids: list[str], at: float,
               breach: str, once: str | None = None, **values) -> list[Finding]:
        """A MatterProcess's finding: ``mark`` names it in the key; ``once`` (default: the
        mark) is what makes it the only one of its kind for the matter."""
        once = once or mark
        watched = self.applies(control, m) if control.process is None else control.process.watched(self, control, m)
        if once in m.found or not watched:
            return []
        m.found.add(once)
        return [Finding(control.id, (key[0], key[1], mark), list(dict.fromkeys(event_ids)), at, at,
                        {"org_id": key[0], "matter_id": key[1], "breach": breach, "step": mark.partition(":")[2],
                         "matter_kind": control.matter_kind, "control": control.id, **values})]

    # the checks -------------------------------------------------------------------------------
    def _finding(self, control: CompiledControl, key: tuple, m: Matter, breach: str, step: str, event_ids: list[str],
                 at: float, again: bool = False, **values) -> list[Finding]:
        mark = f"{breach}:{step}"
        if (mark in m.found and not again) or not self.applies(control, m):
            return []
        m.found.add(mark)
        # the events it rests on first, then the matter's history up to the breach: the ticket's
        # timeline (what came later may or may not have been read yet, so it is left out)
        executed = m.executed if m.executed and m.executed[0] <= at else None
        history = sorted([e for e in (m.submitted, executed) if e] + m.steps + m.changes, key=lambda e: e[0])
        ids = ([m.submitted[1]] if m.submitted else []) + event_ids + ([executed[1]] if executed else [])
        ids += [e[1] for e in history if e[0] <= at]
        text = BREACHES[breach].format(step=step, **values)
        return [Finding(control.id, (key[0], key[1], mark), list(dict.fromkeys(ids)), at, at,
                        {"org_id": key[0], "matter_id": key[1], "breach": text, "step": step,
                         "matter_kind": control.matter_kind, "control": control.id})]

    def _step_checks(self, control, key, m: Matter, now: float, order: bool = True) -> list[Finding]:
        """The checks of every step the inputs have been read past (what was found stays found)."""
        out = []
        for step in m.steps:
            if step[0] <= now:
                out += self._reviewer_checks(control, key, m, step)
                if order:
                    out += self._order_check(control, key, m, step)
        return out

    def _reviewer_checks(self, control, key, m: Matter, step: tuple) -> list[Finding]:
        t, eid, name, post, reviewer = step[:5]
        required = control.step(name)
        out = []
        if required is not None and post != required.post:
            out += self._finding(control, key, m, "wrong_post", name, [eid], t, post=post or "—",
                                 required_post=required.post)
        if m.submitted and reviewer and reviewer == m.submitted[2]:
            out += self._finding(control, key, m, "own_draft", name, [eid], t, reviewer=reviewer)
        return out

    def _order_check(self, control, key, m: Matter, step: tuple) -> list[Finding]:
        t, eid, name, _post, _reviewer, opinion = step[:6]
        required = control.step(name)
        if required is None or opinion != "pass":
            return []
        ahead = [s.step for s in control.steps[: required.index] if m.passed(s.step, until=t) is None]
        if not ahead:
            return []
        return self._finding(control, key, m, "out_of_order", name, [eid], t, ahead=", ".join(ahead))

    def _judge_execution(self, control, key, m: Matter) -> list[Finding]:
        if m.submitted is None and not m.steps:
            return []  # the OA never mentioned it: the flag rules speak for such matters
        if "judged" in m.found or not self.applies(control, m):
            return []
        m.found.add("judged")
        breaches = [] if m.flagged else self._execution_breaches(control, key, m)
        self.judged.append(Judgement(control.id, key[0], key[1], control.matter_kind, m.executed[0],
                                     not breaches and not m.flagged))
        return breaches

    def _execution_breaches(self, control, key, m: Matter) -> list[Finding]:
        t_exec = m.executed[0]
        for s in control.steps:
            opinions = m.opinions(s.step, until=t_exec)
            if not opinions:
                return self._finding(control, key, m, "executed_early", s.step, [], t_exec)
            last = opinions[-1]
            if last[5] == "reject":
                return self._finding(control, key, m, "after_reject", s.step, [last[1]], t_exec)
            if last[5] == "conditional":
                follow_up = s.conditional_needs
                done = follow_up and m.passed(follow_up, since=last[0], until=t_exec)
                if not done:
                    return self._finding(control, key, m, "conditional_open", s.step, [last[1]], t_exec,
                                         follow_up=follow_up or "follow-up review")
            elif last[5] != "pass":
                return self._finding(control, key, m, "executed_early", s.step, [last[1]], t_exec)
        return []

    def _judge_changes(self, control, key, m: Matter, now: float) -> list[Finding]:
        if control.change is None or m.amount is None:
            return []
        tolerance, step, within = control.change
        out = []
        reviewed = m.amount
        for t, eid, amount in m.changes:
            if amount is None or math.isnan(amount) or t + within + control.lateness > now:
                continue
            if m.passed(step, until=t) is None:
                continue  # never reviewed: the execution check speaks for it
            if amount > reviewed * (1 + tolerance) and m.passed(step, since=t, until=t + within) is None:
                out += self._finding(control, key, m, "changed", step, [eid], t + within, amount=amount,
                                     reviewed=reviewed, days=within / 86400)
            elif m.passed(step, since=t, until=t + within) is not None:
                reviewed = amount  # re-reviewed at the new amount
        return out

    def _judge_silence(self, control, key, m: Matter, now: float) -> list[Finding]:
        if m.submitted is None:
            return []
        out = []
        for s in control.steps:
            if s.within is None:
                continue
            limit = m.submitted[0] + s.within
            if limit + control.lateness > now:
                continue
            if any(o[0] <= limit for o in m.opinions(s.step)):
                continue
            if m.executed is not None and m.executed[0] <= limit:
                continue  # executed while waiting: the execution check reports it
            if any(o[5] == "reject" for o in m.steps if o[0] <= limit):
                continue  # rejected: the matter no longer waits
            out += self._silent(control, key, m, s)
        return out

    def _silent(self, control, key, m: Matter, s: CompiledStep, again: bool = False) -> list[Finding]:
        """The silence of step ``s``, with the execution last where there is one (read
        before the silence was judged, or after: the same ticket, the same events)."""
        found = self._finding(control, key, m, "silent", s.step, [], m.submitted[0] + s.within, again=again,
                              days=s.within / 86400)
        for f in found:
            if m.executed is not None:
                f.event_ids[:] = [e for e in f.event_ids if e != m.executed[1]] + [m.executed[1]]
        return found

    # time passing ------------------------------------------------------------------------------
    def advance(self, org_marks: dict[str, float], matters: dict[str, dict[tuple, Matter]],
                until: float = math.inf) -> list[Finding]:
        """Judge every check whose moment the given orgs' stream time has passed
        (each org's mark, but no further than ``until``)."""
        out: list[Finding] = []
        for control in self.controls:
            due, read_due = self._due[control.id], self._read_due[control.id]
            store = matters.get(control.id, {})
            # The given orgs where something waits, in order (set arithmetic in C: most of a
            # large group's orgs, most batches, wait for nothing under most controls).
            for org in sorted(org_marks.keys() & (due.heaps.keys() | read_due.heaps.keys())):
                mark = org_marks[org]
                now = min(mark, until)
                for key in due.pop_due(org, now):
                    m = store.get(key)
                    if m is None:
                        continue
                    if control.process is not None:
                        out += control.process.judge(self, control, key, m, now)
                        continue
                    if m.executed is not None and m.executed[0] + control.lateness <= now:
                        out += self._judge_execution(control, key, m)
                    out += self._judge_changes(control, key, m, now)
                    out += self._judge_silence(control, key, m, now)
                if mark > now and due.next_at(org) <= mark:
                    self.held_back.add(org)
                for key in read_due.pop_due(org, until):
                    m = store.get(key)
                    if m is not None:
                        out += self._resolve_deferred(control, key, m, until, matters)
                        out += self._step_checks(control, key, m, until)
                if read_due.next_at(org) < math.inf:
                    self.held_back.add(org)
        return out

    def take_held_back(self) -> set[str]:
        held, self.held_back = self.held_back, set()
        return held

    def pending_orgs(self) -> set[str]:
        return {org for due in self._due.values() for org, heap in due.heaps.items() if heap}

    def claim(self, control: CompiledControl, key: tuple, matters: dict[str, dict[tuple, Matter]],
              at: float = math.inf) -> bool:
        """A flag rule this control supersedes fired on the matter's execution at ``at``.
        True when the control follows the matter — the OA mentioned it by then —
        (drop the flag's finding: the control judges it); otherwise the flag's
        ticket stands for the matter, and the control will not report its execution again."""
        store = matters.setdefault(control.id, {})
        m = store.get(key)
        if m is not None and self.applies(control, m) and (
                (m.submitted is not None and m.submitted[0] <= at) or any(s[0] <= at for s in m.steps)):
            return True
        if m is None:
            m = store[key] = Matter()
        m.flagged = True
        return False

    def defer(self, control: CompiledControl, key: tuple, finding: Finding,
              matters: dict[str, dict[tuple, Matter]]) -> None:
        """Hold a flag rule's finding on this matter until every input has been read past
        its execution: then ``claim`` decides, knowing whether the OA mentioned
        the matter before it was executed."""
        store = matters.setdefault(control.id, {})
        m = store.get(key)
        if m is None:
            m = store[key] = Matter()
        m.deferred.append([finding.rule_id, list(finding.key), finding.event_ids, finding.first_seen,
                           finding.last_seen, finding.values])
        self._read_due[control.id].push(finding.first_seen, key)

    def _resolve_deferred(self, control, key, m: Matter, until: float, matters) -> list[Finding]:
        ready = [f for f in m.deferred if f[3] <= until]
        if not ready:
            return []
        m.deferred = [f for f in m.deferred if f[3] > until]
        return [Finding(rule, tuple(k), list(ids), first, last, dict(values))
                for rule, k, ids, first, last, values in ready if not self.claim(control, key, matters, at=first)]

    def restore(self, matters: dict[str, dict[tuple, Matter]]) -> None:
        """Rebuild the due checks from recovered matters (after a restart or a rebalance)."""
        self._due = {c.id: _Due() for c in self.controls}
        self._read_due = {c.id: _Due() for c in self.controls}
        self.held_back = set()
        for control in self.controls:
            due, read_due = self._due[control.id], self._read_due[control.id]
            for key, m in matters.get(control.id, {}).items():
                if control.process is not None:
                    for t in control.process.due(control, m):
                        due.push(t, key)
                    continue
                if m.submitted:
                    for s in control.steps:
                        if s.within is not None:
                            due.push(m.submitted[0] + s.within + control.lateness, key)
                if m.executed:
                    due.push(m.executed[0] + control.lateness, key)
                if control.change:
                    for t, _eid, _amount in m.changes:
                        due.push(t + control.change[2] + control.lateness, key)
                for f in m.deferred:
                    read_due.push(f[3], key)
                for step in m.steps:  # its checks may not have been made yet (made twice, found once)
                    read_due.push(step[0], key)
            # Whatever waits is judged at the next batch, whichever orgs it holds: an org whose
            # checks a lagging input held back before the restart may send nothing more.
            self.held_back.update(org for heaps in (due.heaps, read_due.heaps) for org, heap in heaps.items() if heap)

    def forget_idle(self, org_marks: dict[str, float], matters: dict[str, dict[tuple, Matter]],
                    until: float = math.inf) -> None:
        """Drop matters idle longer than their control's ``expires`` in their org's stream time (to ``until``)."""
        for control in self.controls:
            store = matters.get(control.id)
            if not store:
                continue
            stale = [k for k, m in store.items()
                     if m.last_t < min(org_marks.get(k[0], -math.inf), until) - control.expires and not m.deferred]
            for k in stale:
                del store[k]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)
