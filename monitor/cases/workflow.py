"""The disposal workflow of a ticket: states, the moves between them, escalation. Pure.

    open ──► acknowledged ──► investigating ──► resolved ──► closed
      └──────────┴──────────────────┴─────────────► resolved        (a quick disposal)
    resolved, closed ──► open                                         (reopen)

``resolved`` needs an outcome: a confirmed violation (it joins the violation
record, 违规行为记录), a false positive, or remediated. Every move is written to
the ticket's audit trail with who, when and why (``monitor.cases.tickets``).

Escalation of overdue tickets follows the duty list's ``escalates_to``: past
the acknowledge or dispose deadline, to the owner post's superior (the
compliance department head); a full dispose period later still open, one step
further (the general counsel, 总法律顾问).

>>> check_move("open", "acknowledged")
>>> def why(*move, **kw):
...     try:
...         check_move(*move, **kw)
...     except WorkflowError as err:
...         return str(err)
>>> why("open", "closed")
'a ticket that is open cannot be closed (it can be: acknowledged, investigating, resolved)'
>>> why("investigating", "resolved", outcome="maybe")
'outcome must be one of confirmed_violation, false_positive, remediated'
"""

from __future__ import annotations

import datetime as dt

from monitor.core.rules import RulePack, parse_duration

__all__ = ["MOVES", "OUTCOMES", "STATES", "WorkflowError", "check_move", "escalation_due"]

STATES = ("open", "acknowledged", "investigating", "resolved", "closed")
OUTCOMES = ("confirmed_violation", "false_positive", "remediated")
MOVES: dict[str, tuple[str, ...]] = {
    "open": ("acknowledged", "investigating", "resolved"),
    "acknowledged": ("investigating", "resolved"),
    "investigating": ("resolved",),
    "resolved": ("closed", "open"),
    "closed": ("open",),
}


class WorkflowError(ValueError):
    """A move the workflow does not allow; the message says what is allowed."""


def check_move(current: str, to: str, outcome: str | None = None) -> None:
    if to not in STATES:
        raise WorkflowError(f"unknown state '{to}' (states: {', '.join(STATES)})")
    if to not in MOVES.get(current, ()):
        raise WorkflowError(f"a ticket that is {current} cannot be {to} (it can be: {', '.join(MOVES.get(current, ()))})")
    if to == "resolved" and outcome not in OUTCOMES:
        raise WorkflowError(f"outcome must be one of {', '.join(OUTCOMES)}")
    if to != "resolved" and outcome is not None:
        raise WorkflowError("only a resolution has an outcome")


def escalation_due(pack: RulePack, owner_post: str, risk_id: str, status: str, level: int, ack_due_at: dt.datetime,
                   due_at: dt.datetime, now: dt.datetime) -> tuple[int, str] | None:
    """(new level, the post it goes to) if the ticket must escalate now, else None.

    >>> from monitor.packs.rulefiles import load_pack, default_rules_dir
    >>> pack = load_pack(default_rules_dir())
    >>> t0 = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    >>> escalation_due(pack, "finance_compliance_officer", "FIN-02", "open", 0, t0, t0 + dt.timedelta(days=7), t0 + dt.timedelta(days=2))
    (1, 'compliance_head')
    >>> escalation_due(pack, "finance_compliance_officer", "FIN-02", "investigating", 1, t0, t0 + dt.timedelta(days=7), t0 + dt.timedelta(days=15))
    (2, 'general_counsel')
    """
    if status in ("resolved", "closed"):
        return None
    risk = pack.risks.get(risk_id)
    period = dt.timedelta(seconds=parse_duration(risk.sla.dispose)) if risk else dt.timedelta(days=7)
    late_ack = status == "open" and now > ack_due_at
    if level == 0 and (late_ack or now > due_at):
        target = _superior(pack, owner_post)
        return (1, target) if target else None
    if level == 1 and now > due_at + period:
        first = _superior(pack, owner_post)
        target = _superior(pack, first) if first else None
        return (2, target) if target else None
    return None


def _superior(pack: RulePack, post_id: str | None) -> str | None:
    post = pack.posts.get(post_id or "")
    return post.escalates_to if post else None
