"""Foreign legal disputes (涉外重大法律纠纷): warned at once, the response watched. Pure.

The legal system sends each step of a case as a ``legal_case`` event
(``attributes.case_id``, ``jurisdiction`` an ISO 3166-1 alpha-2 code with
``CN`` for mainland China, ``role``, ``status``, ``court``; ``amount`` the
claim in CNY). A control of matter kind ``legal_case`` (rules/review_controls.yaml)
says which cases are major — by ``only``, ``unless`` and ``min_amount``, e.g.
abroad, as defendant, a claim of 10,000,000 CNY or more — and gives them:

- **the early warning** (``warning``): once per case, at once, at the first
  event from which the case is known to be major (its first ``filed`` or
  ``served`` as a rule);
- **the response** (``silent:response``): a case ``served`` must be
  ``responded`` to (or ``settled``, or ``closed``) within the step's
  ``within`` of being served; silence is judged when the org's stream time
  has passed that limit by the control's ``lateness``, and the alert lists
  the case's events.

>>> from monitor.core.controls import ControlSpec, StepSpec, compile_control_spec

>>> from monitor.core.reviews import ReviewWatch
>>> control = compile_control_spec(ControlSpec(control="RC-LAW-01", title="t", matter_kind="legal_case",
...     risk="OVS-04", min_amount=1e7, only={"role": ["defendant"]}, unless={"jurisdiction": ["CN"]},
...     steps=[StepSpec(step="response", within="15d")]))
>>> watch, matters = ReviewWatch([control]), {}
>>> served = {"event_id": "c1", "type": "legal_case", "org_id": "SUB01", "t": 0.0, "amount": 2e7,
...           "attributes": {"case_id": "LC1", "jurisdiction": "DE", "role": "defendant", "status": "served"}}
>>> [f.key for f in watch.apply([served], matters)]
[('SUB01', 'LC1', 'warning')]
>>> [f.key for f in watch.advance({"SUB01": 17 * 86400.0}, matters)]
[('SUB01', 'LC1', 'silent:response')]
"""

from __future__ import annotations

from bisect import insort

from monitor.core.findings import Finding
from monitor.core.controls import CompiledControl
from monitor.core.reviews import Matter, MatterProcess, ReviewWatch

__all__ = ["ANSWERED", "CaseProcess", "STATUSES"]

STATUSES = ("filed", "served", "responded", "hearing", "judgment", "settled", "closed")
# a served case no longer waits for its response once one of these came
ANSWERED = ("responded", "settled", "closed")


class CaseProcess(MatterProcess):
    """A legal case: ``marks`` hold ``(t, event_id, status)``."""

    event_types = ("legal_case",)

    def key(self, control: CompiledControl, row: dict) -> tuple | None:
        if row["type"] != "legal_case":
            return None
        case_id = row["attributes"].get("case_id")
        return None if case_id in (None, "") else (row["org_id"], str(case_id))

    def on_event(self, watch: ReviewWatch, control: CompiledControl, key: tuple, m: Matter,
                 row: dict) -> list[Finding]:
        status = row["attributes"].get("status")
        status = status if isinstance(status, str) else None
        first_served = self._served(m) is None and status == "served"
        insort(m.marks, (row["t"], row["event_id"], status))
        self.note(control, m, row)
        if first_served or (status == "served" and row["t"] < self._served(m)[0]):
            for at in self.due(control, m):
                watch.schedule(control, at, key)
        details = {name: row["attributes"].get(name) for name in ("jurisdiction", "role", "court")}
        claim = "—" if m.amount is None else f"{m.amount:,.0f}"
        return watch.report(control, key, m, "warning", [k[1] for k in m.marks], row["t"],
                            f"major case abroad: {details['role'] or '—'} before {details['court'] or '—'} "
                            f"({details['jurisdiction'] or '—'}), claim {claim} CNY, {status or 'status unknown'}")

    def judge(self, watch: ReviewWatch, control: CompiledControl, key: tuple, m: Matter, now: float) -> list[Finding]:
        served = self._served(m)
        step = control.steps[0] if control.steps else None
        if served is None or step is None or step.within is None:
            return []
        limit = served[0] + step.within
        if limit + control.lateness > now:
            return []
        if any(t <= limit and status in ANSWERED for t, _eid, status in m.marks):
            return []
        return watch.report(control, key, m, "silent:response", [k[1] for k in m.marks if k[0] <= limit], limit,
                            f"served and not responded to within {step.within / 86400:.0f} days")

    def due(self, control: CompiledControl, m: Matter) -> list[float]:
        served = self._served(m)
        step = control.steps[0] if control.steps else None
        if served is None or step is None or step.within is None:
            return []
        return [served[0] + step.within + control.lateness]

    @staticmethod
    def _served(m: Matter) -> tuple | None:
        return next((k for k in m.marks if k[2] == "served"), None)
