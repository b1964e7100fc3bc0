"""The review-process control list (合规审查流程管控清单) and the watch over it. Pure.

A control says, for one kind of reviewable matter (a contract, a regulation,
a 三重一大 decision), which business events execute it, which review steps it
needs before that, in what order, by which post, within what time, and which
risk of the risk list a breach maps to. The office/approval system (OA) sends
the process as events: ``matter_submitted`` and ``review_step``; the business
systems send the executions they already send (``contract_signed`` …).

The watch keeps, per control and matter, what has happened to the matter
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

>>> control = compile_control_spec(ControlSpec(
...     control="RC-CON-01", title="t", matter_kind="contract", risk="CON-01",
...     steps=[StepSpec(step="legal_review", post="legal_compliance_officer", within="5d")]))
>>> control.matter_id, control.executed_by, [s.within for s in control.steps]
('attributes.contract_id', ('contract_signed',), [432000.0])
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from monitor.core.findings import Finding

__all__ = [
    "BREACHES", "MATTER_KINDS", "OPINIONS", "PROCESS_KINDS", "REVIEW_KINDS", "STEPS", "ChangeSpec", "CompiledControl", "CompiledStep",
    "ControlSpec", "Judgement", "Matter", "MatterProcess", "ReviewWatch", "StepSpec", "compile_control_spec", "review_rates",
]

# matter kind -> (its id attribute, the events that execute it, the events that change it)
MATTER_KINDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "contract": ("attributes.contract_id", ("contract_signed",), ("contract_changed",)),
    "regulation": ("attributes.regulation_id", ("regulation_issued",), ()),
    "decision": ("attributes.decision_id", ("decision",), ()),
    "project": ("attributes.project_id", ("investment_disbursement",), ()),
    "legal_case": ("attributes.case_id", (), ()),
    "key_post": ("attributes.employee_id", (), ()),
}
STEPS = ("business_review", "legal_review", "compliance_review", "cco_signoff")
# matter kinds whose process is not a review before execution: each has its own (``MatterProcess``)
KIND_STEPS = {"project": ("legal_participation",), "legal_case": ("response",),
              "key_post": ("compliance_training", "compliance_commitment")}
PROCESS_KINDS = {
    "project": "monitor.core.projects:ProjectProcess",
    "legal_case": "monitor.core.disputes:CaseProcess",
    "key_post": "monitor.core.keyposts:KeyPostProcess",
}
REVIEW_KINDS = ("contract", "regulation", "decision")  # what the review rate (审查率) counts
OPINIONS = ("pass", "conditional", "reject")
BREACHES = {
    "executed_early": "executed before {step} passed",
    "after_reject": "executed after {step} rejected it",
    "conditional_open": "executed on a conditional {step} opinion without a passed {follow_up}",
    "wrong_post": "{step} done by {post}, not {required_post}",
    "own_draft": "{step} done by {reviewer}, who drafted the matter",
    "out_of_order": "{step} passed before {ahead}",
    "changed": "raised to {amount:,.0f} after review (reviewed at {reviewed:,.0f}) with no new {step} within {days:.0f} days",
    "silent": "{step} not done within {days:.0f} days of submission",
}


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class StepSpec(_Strict):
    step: Literal["business_review", "legal_review", "compliance_review", "cco_signoff", "legal_participation",
                  "response", "compliance_training", "compliance_commitment"]
    post: str | None = None  # a post of duties.yaml (a review step needs one)
    within: str | None = None  # from submission (a project: from reaching the stage; a case: from being served), e.g. 5d
    conditional_needs: Literal["business_review", "legal_review", "compliance_review", "cco_signoff"] | None = None
    evidence: list[Literal["opinion_no"]] = msgspec.field(default_factory=lambda: ["opinion_no"])


class ChangeSpec(_Strict):
    tolerance: float | str  # a raise above this share of the reviewed amount is material (a number or a parameter)
    review: Literal["business_review", "legal_review", "compliance_review", "cco_signoff"] = "legal_review"
    within: str = "5d"


class ControlSpec(_Strict):
    control: str
    title: str
    matter_kind: Literal["contract", "regulation", "decision", "project", "legal_case", "key_post"]
    risk: str
    steps: list[StepSpec]
    severity: Literal["low", "medium", "high", "critical"] = "high"
    status: Literal["live", "shadow", "draft"] = "live"
    min_amount: float | str | None = None  # the control applies to matters of at least this amount (or parameter)
    only: dict[str, list[str]] = {}  # ... and whose attributes hold one of these values (e.g. kind: [...])
    unless: dict[str, list[str]] = {}  # ... and none of these (e.g. jurisdiction: [CN])
    watch_if: list[str] = []  # boolean attributes that make a matter watched whatever its amount (overseas)
    matter_id: str | None = None  # default: the matter kind's id attribute
    executed_by: list[str] | None = None
    changed_by: list[str] | None = None
    change: ChangeSpec | None = None
    lateness: str = "1d"  # how long a breach waits for a late review event (an OA that syncs nightly)
    expires: str = "400d"  # a matter idle this long is forgotten
    supersedes: list[str] = []  # flag rules this control replaces for the matters it watches
    tests: list[dict[str, Any]] = []


def _seconds(text: str) -> float:
    from monitor.core.rules import parse_duration

    return float(parse_duration(text))


@dataclass(frozen=True)
class CompiledStep:
    step: str
    post: str | None
    within: float | None
    conditional_needs: str | None
    index: int


@dataclass
class CompiledControl:
    """A control ready for the watch; it alerts like a rule (id, risk, severity, message)."""

    id: str
    title: str
    matter_kind: str
    matter_id: str
    executed_by: tuple[str, ...]
    changed_by: tuple[str, ...]
    steps: list[CompiledStep]
    severity: str
    status: str
    lateness: float
    expires: float
    min_amount: float | None = None
    only: dict[str, tuple[str, ...]] | None = None
    unless: dict[str, tuple[str, ...]] | None = None
    watch_if: tuple[str, ...] = ()
    change: tuple[float, str, float] | None = None  # (tolerance, step, within seconds)
    process: Any = None  # the MatterProcess of a kind that is not a review before execution
    key_posts: frozenset[str] = frozenset()  # the posts duties.yaml marks key_post (whose staff a key_post control watches)
    supersedes: tuple[str, ...] = ()
    risk: Any = None  # the Risk, once the pack resolves it
    message: Any = None  # a Template
    spec: ControlSpec | None = None
    key: tuple[str, ...] = ("org_id", "matter_id", "breach")

    @property
    def score(self) -> float:
        return {"low": 0.25, "medium": 0.5, "high": 0.75, "critical": 1.0}[self.severity]

    def step(self, name: str) -> CompiledStep | None:
        return next((s for s in self.steps if s.step == name), None)

    @property
    def watched_types(self) -> tuple[str, ...]:
        """The event types this control reads."""
        own = self.process.event_types if self.process is not None else ("matter_submitted", "review_step")
        return tuple(dict.fromkeys((*own, *self.executed_by, *self.changed_by)))


def compile_control_spec(spec: ControlSpec, params: dict[str, float] | None = None) -> CompiledControl:
    """The control a spec describes (its references are checked by the pack;
    ``params`` are the parameters a tolerance may name)."""
    default_id, executes, changes = MATTER_KINDS[spec.matter_kind]
    min_amount = spec.min_amount
    if isinstance(min_amount, str):
        min_amount = float((params or {})[min_amount])
    change = None
    if spec.change:
        tolerance = spec.change.tolerance
        tolerance = float((params or {})[tolerance]) if isinstance(tolerance, str) else float(tolerance)
        change = (tolerance, spec.change.review, _seconds(spec.change.within))
    return CompiledControl(
        id=spec.control, title=spec.title, matter_kind=spec.matter_kind, matter_id=spec.matter_id or default_id,
        executed_by=tuple(spec.executed_by or executes), changed_by=tuple(spec.changed_by if spec.changed_by is not None
                                                                            else changes),
        steps=[CompiledStep(s.step, s.post, _seconds(s.within) if s.within else None, s.conditional_needs, i)
               for i, s in enumerate(spec.steps)],
        severity=spec.severity, status=spec.status, lateness=_seconds(spec.lateness), expires=_seconds(spec.expires),
        min_amount=min_amount, only={k: tuple(v) for k, v in spec.only.items()} or None,
        unless={k: tuple(v) for k, v in spec.unless.items()} or None, watch_if=tuple(spec.watch_if), change=change,
        supersedes=tuple(spec.supersedes), spec=spec, process=_process(spec.matter_kind))


def _process(matter_kind: str) -> Any:
    where = PROCESS_KINDS.get(matter_kind)
    if where is None:
        return None
    import importlib

    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)()


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

    # events in ------------------------------------------------------------------------------
    def apply(self, rows: list[dict[str, Any]], matters: dict[str, dict[tuple, Matter]],
              until: float = math.inf) -> list[Finding]:
        """Fold events in (dicts with event_id, type, org_id, t, amount, attributes), in business order.
        A step's own checks (post, drafter, order) are made at once when every
        input has been read past it (``until``), else once they are."""
        self._until = until
        findings: list[Finding] = []
        for row in sorted(rows, key=lambda r: r["t"]):
            for control in self.controls:
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
            m.steps.append(step)
            m.steps.sort()
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
            heaps, read_heaps = due.heaps, read_due.heaps
            for org, mark in org_marks.items():
                if not heaps.get(org) and not read_heaps.get(org):
                    continue  # nothing waits in this org (most of a large group's, most batches)
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


# --- the list file ------------------------------------------------------------------------

CONTROL_ID = r"^RC-[A-Z0-9][A-Z0-9-]*$"
MESSAGE = "{org_id} {matter_id}: {breach}"


class ControlTest(_Strict):
    """A case beside a control: partial events (as in rule tests), how far stream
    time then moves on, and the breach expected (or none)."""

    name: str
    events: list[dict[str, Any]]
    expect: Literal["hit", "miss"]
    breach: str | None = None  # e.g. executed_early:legal_review; any breach when not given
    breaches: list[str] | None = None  # or: exactly these breaches, each once (e.g. [warning])
    then: str = "0s"  # stream time moves on this long after the last event


def compile_controls(doc, risks: dict, posts: dict, params: dict, rule_ids: set[str], problems: list) -> list[CompiledControl]:
    """Compile review_controls.yaml (``controls:`` a list of entries); append
    located Problems, with did-you-mean for every name that points elsewhere."""
    import difflib
    import re

    from monitor.core.event import ATTRIBUTE_TYPES, EVENT_TYPES
    from monitor.core.rules import Problem, Template, convert, parse_duration

    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("controls"), list):
        line, col = doc.where(())
        problems.append(Problem(doc.file, line, col, "review_controls.yaml holds 'controls:', a list of '- control:' entries"))
        return []
    out: list[CompiledControl] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data["controls"]):
        cid = item.get("control") if isinstance(item, dict) else None
        spec = convert(doc, ("controls", i), item, ControlSpec, cid if isinstance(cid, str) else None, problems)
        if spec is None:
            continue
        start = len(problems)

        def problem(sub: tuple, message: str, key: bool = False) -> None:
            line, col = doc.where(("controls", i, *sub), key=key)
            problems.append(Problem(doc.file, line, col, message, spec.control))

        def unknown(sub: tuple, what: str, name: str, known) -> None:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            problem(sub, f"unknown {what} '{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))

        if not re.match(CONTROL_ID, spec.control):
            problem(("control",), f"control id '{spec.control}' must look like RC-CON-01 (RC- and capitals, digits, dashes)")
        if spec.control in seen:
            problem(("control",), f"duplicate control id (first at line {seen[spec.control]})")
        seen.setdefault(spec.control, doc.where(("controls", i, "control"))[0])
        if spec.risk not in risks:
            unknown(("risk",), "risk", spec.risk, risks)
        if not spec.steps:
            problem(("steps",), "a control needs at least one review step")
        names = [s.step for s in spec.steps]
        allowed = KIND_STEPS.get(spec.matter_kind, STEPS)
        for j, step in enumerate(spec.steps):
            if step.step not in allowed:
                problem(("steps", j, "step"), f"a {spec.matter_kind} control's steps are {', '.join(allowed)}, "
                                              f"not '{step.step}'")
            if step.post is None and spec.matter_kind in ("contract", "regulation", "decision", "project"):
                problem(("steps", j), f"step '{step.step}' needs the post that must do it (post:)")
            elif step.post is not None and step.post not in posts:
                unknown(("steps", j, "post"), "post", step.post, posts)
            if names.count(step.step) > 1 and names.index(step.step) != j:
                problem(("steps", j, "step"), f"step '{step.step}' is listed twice")
            if step.conditional_needs == step.step:
                problem(("steps", j, "conditional_needs"), "a conditional opinion cannot be followed up by itself")
        durations = [(("steps", j, "within"), s.within) for j, s in enumerate(spec.steps) if s.within]
        durations += [(("lateness",), spec.lateness), (("expires",), spec.expires)]
        if spec.change:
            durations.append((("change", "within"), spec.change.within))
        for sub, text in durations:
            try:
                parse_duration(text)
            except ValueError as err:
                problem(sub, str(err))
        for field_name in ("executed_by", "changed_by"):
            for j, kind in enumerate(getattr(spec, field_name) or []):
                if kind not in EVENT_TYPES:
                    unknown((field_name, j), "event type", kind, EVENT_TYPES)
        if spec.matter_id is not None and spec.matter_id.removeprefix("attributes.") not in ATTRIBUTE_TYPES:
            unknown(("matter_id",), "attribute", spec.matter_id, [f"attributes.{a}" for a in ATTRIBUTE_TYPES])
        for field_name in ("only", "unless"):
            for name in getattr(spec, field_name):
                if name not in ATTRIBUTE_TYPES:
                    unknown((field_name, name), "attribute", name, ATTRIBUTE_TYPES)
        for j, name in enumerate(spec.watch_if):
            if ATTRIBUTE_TYPES.get(name) != "bool":
                unknown(("watch_if", j), "true/false attribute", name, [a for a, t in ATTRIBUTE_TYPES.items() if t == "bool"])
        tolerances = {}
        if isinstance(spec.min_amount, str):
            param = params.get(spec.min_amount)
            if param is None or param.is_map:
                unknown(("min_amount",), "number parameter", spec.min_amount, [p for p, v in params.items() if not v.is_map])
            else:
                tolerances[spec.min_amount] = param.default
        if spec.change is not None:
            if spec.change.review not in names:
                problem(("change", "review"), f"the re-review step '{spec.change.review}' is not one of this control's steps")
            tolerance = spec.change.tolerance
            if isinstance(tolerance, str):
                param = params.get(tolerance)
                if param is None or param.is_map:
                    unknown(("change", "tolerance"), "number parameter", tolerance,
                            [p for p, v in params.items() if not v.is_map])
                else:
                    tolerances[tolerance] = param.default
            elif not tolerance >= 0:
                problem(("change", "tolerance"), "a tolerance is a share of the reviewed amount, 0 or more")
        for j, rule_id in enumerate(spec.supersedes):
            if rule_id not in rule_ids:  # nothing to replace: harmless, but likely a typo
                close = difflib.get_close_matches(rule_id, sorted(rule_ids), n=1, cutoff=0.6)
                line, col = doc.where(("controls", i, "supersedes", j))
                problems.append(Problem(doc.file, line, col, f"supersedes unknown rule '{rule_id}'"
                                        + (f" (did you mean '{close[0]}'?)" if close else ""), spec.control, "warning"))
        for j, case in enumerate(spec.tests):
            convert(doc, ("controls", i, "tests", j), case, ControlTest, spec.control, problems)
        if any(p.level == "error" for p in problems[start:]):
            continue
        control = compile_control_spec(spec, tolerances)
        control.risk = risks[spec.risk]
        control.key_posts = frozenset(p for p, post in posts.items() if getattr(post, "key_post", False))
        control.message = Template(MESSAGE, ("org_id", "matter_id", "breach"))
        out.append(control)
    return out
