"""Major projects with legal staff at every stage (重大项目法律合规人员全程参与). Pure.

The investment system sends a project's stages as ``project_stage`` events
(``attributes.project_id``, ``stage``, ``overseas``; ``amount`` the project's
total in CNY): ``initiation`` (立项), ``feasibility`` (可研), ``decision``
(决策), ``contracting`` (合同签订), ``implementation`` (实施), ``acceptance``
(竣工验收), in that order. A project becomes a matter at its first stage. The
OA sends the legal staff's part as ``review_step`` events of ``matter_kind:
project`` with ``step: legal_participation`` and ``attributes.stage``; the
investment system's ``investment_disbursement`` (and ``investment_approval``)
carry ``attributes.project_id``.

A control of matter kind ``project`` watches the projects it applies to (e.g.
``min_amount: project_min_amount`` or ``watch_if: [overseas]``). Each stage a
project reaches needs a passed ``legal_participation`` for that stage, by the
step's post:

=========================  =========================================================
``moved_on:<stage>``        the project reached a later stage before it (the alert
                            lists the event where it moved on)
``silent:<stage>``          none within the step's ``within`` of reaching the stage
``disbursed_early:contracting``  money disbursed before one covered ``contracting``
=========================  =========================================================

One ticket per project stage: the breach that came first in business time,
however the events were batched. Each check waits for the org's stream time
to pass its moment by the control's ``lateness`` (a week and a day in the
default list: the investment system syncs weekly).

全程参与率, the participation rate: each time a watched project moves on, it is
judged (a ``Judgement``): covered when every stage it has left so far was
covered before it moved on. ``participation_rates`` counts, per org and month,
the projects that moved on in that month and how many of them were covered.

>>> from monitor.core.controls import ControlSpec, StepSpec, compile_control_spec

>>> from monitor.core.reviews import ReviewWatch
>>> control = compile_control_spec(ControlSpec(control="RC-PRJ-01", title="t", matter_kind="project",
...     risk="INV-05", min_amount=5e7, watch_if=["overseas"],
...     steps=[StepSpec(step="legal_participation", post="legal_compliance_officer", within="10d")]))
>>> stage = lambda eid, t, name: {"event_id": eid, "type": "project_stage", "org_id": "SUB03", "t": t,
...     "amount": 8e7, "attributes": {"project_id": "XM1", "stage": name, "overseas": False}}
>>> watch, matters = ReviewWatch([control]), {}
>>> watch.apply([stage("s1", 0.0, "initiation"), stage("s2", 3 * 86400.0, "feasibility")], matters)
[]
>>> [f.key for f in watch.advance({"SUB03": 5 * 86400.0}, matters)]
[('SUB03', 'XM1', 'moved_on:initiation')]
"""

from __future__ import annotations

import datetime as dt
from bisect import insort

from monitor.core.findings import Finding
from monitor.core.controls import CompiledControl
from monitor.core.reviews import Judgement, Matter, MatterProcess, ReviewWatch, insort_mark

__all__ = ["STAGES", "ProjectProcess", "participation_rates", "stage_timeline"]

STAGES = ("initiation", "feasibility", "decision", "contracting", "implementation", "acceptance")
_ORDER = {name: i for i, name in enumerate(STAGES)}
_CST = dt.timezone(dt.timedelta(hours=8))


class ProjectProcess(MatterProcess):
    """A project: ``marks`` hold ``(t, event_id, "stage", stage)``, ``(t, event_id,
    "disbursed", amount)`` and ``(t, event_id, "approval", None)``; participations are
    review steps ``(t, event_id, step, post, reviewer, opinion, opinion_no, stage)``."""

    event_types = ("project_stage", "review_step", "investment_disbursement", "investment_approval")

    def key(self, control: CompiledControl, row: dict) -> tuple | None:
        attrs = row["attributes"]
        if row["type"] == "review_step":
            if attrs.get("matter_kind") != control.matter_kind:
                return None
            project = attrs.get("matter_id")
        elif row["type"] in ("project_stage", "investment_disbursement", "investment_approval"):
            project = attrs.get("project_id")
        else:
            return None
        return None if project in (None, "") else (row["org_id"], str(project))

    def on_event(self, watch: ReviewWatch, control: CompiledControl, key: tuple, m: Matter,
                 row: dict) -> list[Finding]:
        attrs, t, eid, kind = row["attributes"], row["t"], row["event_id"], row["type"]
        if kind == "review_step":
            insort(m.steps, (t, eid, _text(attrs.get("step")), _text(attrs.get("reviewer_post")),
                             _text(attrs.get("reviewer_id")), _text(attrs.get("opinion")),
                             _text(attrs.get("opinion_no")), _text(attrs.get("stage"))))
            return []
        if kind == "project_stage":
            stage = _text(attrs.get("stage"))
            if stage not in _ORDER:
                return []  # not a stage of the list: the project's timeline does not move
            mark = (t, eid, "stage", stage)
            self.note(control, m, row)  # the project's total and whether it is overseas
        elif kind == "investment_disbursement":
            mark = (t, eid, "disbursed", row["amount"])
        else:
            mark = (t, eid, "approval", None)
        insort_mark(m.marks, mark)
        for at in self._moments(control, mark):
            watch.schedule(control, at, key)
        return []

    def _moments(self, control: CompiledControl, mark: tuple) -> list[float]:
        """When the checks an event's mark starts fall due (a stage: its silence, and the
        moving on of the stages before it; a disbursement: its own)."""
        within = self._within(control)
        t = mark[0]
        out = [t + control.lateness]
        if mark[2] == "stage" and within is not None:
            out.append(t + within + control.lateness)
        return out

    def judge(self, watch: ReviewWatch, control: CompiledControl, key: tuple, m: Matter, now: float) -> list[Finding]:
        if not watch.applies(control, m):
            return []
        reached = self.reached(m)
        within = self._within(control)
        # (moment, breach, event ids, text): reported in business-time order, so that the one
        # ticket of a stage goes to the breach that came first, however the events were batched
        found: list[tuple[float, str, list[str], str]] = []
        for stage, (t_reached, eid) in reached.items():
            moved = self.moved_on(m, stage, t_reached)
            if moved is not None and moved[0] + control.lateness <= now and f"judged:{stage}" not in m.found:
                m.found.add(f"judged:{stage}")
                watch.judged.append(self._judgement(control, key, m, moved[0], reached))
                if self.covered(control, m, stage, moved[0]) is None:
                    found.append((moved[0], f"moved_on:{stage}", self._history(m, moved[0], [eid, moved[1]]),
                                  f"{stage} left for {moved[2]} with no legal participation for it"))
            if within is not None and t_reached + within + control.lateness <= now:
                limit = t_reached + within
                if (moved is None or moved[0] > limit) and self.covered(control, m, stage, limit) is None:
                    found.append((limit, f"silent:{stage}", self._history(m, limit, [eid]),
                                  f"no legal participation in {stage} within {within / 86400:.0f} days of reaching it"))
        for t, eid, what, _amount in m.marks:
            if what == "disbursed" and t + control.lateness <= now and self.covered(control, m, "contracting", t) is None:
                found.append((t, "disbursed_early:contracting", self._history(m, t, [eid]),
                              "money disbursed before a legal participation covered contracting"))
        out: list[Finding] = []
        for at, mark, event_ids, text in sorted(found, key=lambda f: (f[0], f[1])):
            out += watch.report(control, key, m, mark, event_ids, at, text, once=f"stage:{mark.partition(':')[2]}")
        return out

    def due(self, control: CompiledControl, m: Matter) -> list[float]:
        return [at for mark in m.marks for at in self._moments(control, mark)]

    # what a project's history says -------------------------------------------------------
    @staticmethod
    def reached(m: Matter) -> dict[str, tuple[float, str]]:
        """Each stage the project has reached: when, first, and by which event."""
        out: dict[str, tuple[float, str]] = {}
        for t, eid, what, stage in m.marks:
            if what == "stage" and stage not in out:
                out[stage] = (t, eid)
        return out

    @staticmethod
    def moved_on(m: Matter, stage: str, since: float) -> tuple[float, str, str] | None:
        """The first event at which the project reached a later stage than ``stage``: (t, event id, that stage)."""
        order = _ORDER[stage]
        return next(((t, eid, later) for t, eid, what, later in m.marks
                     if what == "stage" and t >= since and _ORDER[later] > order), None)

    @staticmethod
    def covered(control: CompiledControl, m: Matter, stage: str, by: float) -> tuple | None:
        """The first passed participation in ``stage`` by the step's post, at or before ``by``."""
        step = control.steps[0] if control.steps else None
        return next((s for s in m.steps if s[0] <= by and s[2] == "legal_participation" and s[5] == "pass"
                     and len(s) > 7 and s[7] == stage and (step is None or s[3] == step.post)), None)

    def _judgement(self, control: CompiledControl, key: tuple, m: Matter, at: float,
                   reached: dict[str, tuple[float, str]]) -> Judgement:
        """The project as of ``at``: covered when every stage it had left was covered before it moved on."""
        covered = True
        for stage, (t_reached, _eid) in reached.items():
            moved = self.moved_on(m, stage, t_reached)
            if moved is not None and moved[0] <= at and self.covered(control, m, stage, moved[0]) is None:
                covered = False
        month = dt.datetime.fromtimestamp(at, _CST).strftime("%Y-%m")
        return Judgement(control.id, key[0], f"{key[1]}@{month}", control.matter_kind, at, covered)

    @staticmethod
    def _history(m: Matter, until: float, first: list[str]) -> list[str]:
        """The events a finding rests on first, then the project's history up to ``until``."""
        return first + [e[1] for e in sorted([*m.marks, *m.steps], key=lambda e: e[0]) if e[0] <= until]

    @staticmethod
    def _within(control: CompiledControl) -> float | None:
        return control.steps[0].within if control.steps else None


def participation_rates(judgements: list[Judgement]) -> dict[tuple[str, str], tuple[int, int]]:
    """全程参与率: (org, month in China Standard Time) -> (covered projects, projects that moved on
    that month), each project as of its last move in the month.

    >>> participation_rates([Judgement("RC-PRJ-01", "SUB03", "XM1@2026-07", "project", 1783000000.0, True),
    ...                      Judgement("RC-PRJ-01", "SUB03", "XM1@2026-07", "project", 1783100000.0, False),
    ...                      Judgement("RC-PRJ-01", "SUB03", "XM2@2026-07", "project", 1783000000.0, True)])
    {('SUB03', '2026-07'): (1, 2)}
    """
    latest: dict[tuple[str, str], Judgement] = {}
    for j in judgements:
        if j.matter_kind != "project":
            continue
        known = latest.get((j.org_id, j.matter_id))
        if known is None or j.executed_at >= known.executed_at:
            latest[(j.org_id, j.matter_id)] = j
    out: dict[tuple[str, str], list[int]] = {}
    for (org, matter), j in latest.items():
        row = out.setdefault((org, matter.rpartition("@")[2]), [0, 0])
        row[0] += j.reviewed
        row[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def stage_timeline(events: list[dict]) -> list[dict]:
    """A project ticket's stages from its events (dicts as the ticket store keeps them):
    per stage reached, when, who took part (post, reviewer, opinion, when), and when it moved on."""
    stages: dict[str, dict] = {}
    ordered = sorted(events, key=lambda e: str(e.get("occurred_at")))
    for e in ordered:
        a = e.get("attributes") or {}
        if e.get("type") == "project_stage" and a.get("stage") in _ORDER and a["stage"] not in stages:
            stages[a["stage"]] = {"stage": a["stage"], "reached_at": e.get("occurred_at"), "participation": [],
                                  "moved_on_at": None}
    for e in ordered:
        a = e.get("attributes") or {}
        if e.get("type") == "review_step" and a.get("stage") in stages:
            stages[a["stage"]]["participation"].append({"at": e.get("occurred_at"), "post": a.get("reviewer_post"),
                                                        "who": a.get("reviewer_id"), "opinion": a.get("opinion"),
                                                        "opinion_no": a.get("opinion_no")})
    for name, row in stages.items():
        later = [s["reached_at"] for n, s in stages.items() if _ORDER[n] > _ORDER[name]
                 and str(s["reached_at"]) >= str(row["reached_at"])]
        row["moved_on_at"] = min(later, key=str) if later else None
    return sorted(stages.values(), key=lambda s: _ORDER[s["stage"]])


def _text(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)
