"""Staff on key posts, trained and committed (重点岗位人员合规培训与《合规承诺书》). Pure.

The HR/training system sends ``training_completed`` (``attributes.employee_id``,
``course``, ``course_kind``: ``compliance`` or another kind) and
``commitment_signed`` (``attributes.employee_id``, ``year``). Key posts are
marked in duties.yaml (``key_post: true``). Someone on a key post *acts* when
they pass a review step (``review_step``: ``reviewer_id``, ``reviewer_post``,
``opinion: pass``), approve a payment of the control's ``min_amount`` or more
(``payment``: ``attributes.approver_id``, ``approver_post``) or sign a contract
(``contract_signed``: ``signer_id``, ``signer_post``).

A control of matter kind ``key_post`` (the matter: an employee of an org)
warns when they act with either missing:

- a ``compliance`` training in the ``within`` (365 days) before the act (the
  ``compliance_training`` step);
- the commitment signed for the calendar year of the act, China Standard Time
  (the ``compliance_commitment`` step).

One warning per employee and calendar month (``untrained:YYYY-MM``), listing
the acts; each act is judged once the org's stream time has passed it by the
control's ``lateness`` (the training system syncs later than the ERP).

The training coverage of key-post staff: each judged act gives two
``Judgement``s of the employee for the month (matter kinds ``training`` and
``commitment``; one row each in the ticket database), ``training_coverage``
counts the shares by org and month.

>>> from monitor.core.controls import ControlSpec, StepSpec, compile_control_spec

>>> from monitor.core.reviews import ReviewWatch
>>> control = compile_control_spec(ControlSpec(control="RC-KEY-01", title="t", matter_kind="key_post",
...     risk="REG-03", min_amount=1e6, steps=[StepSpec(step="compliance_training", within="365d"),
...                                           StepSpec(step="compliance_commitment")]))
>>> control.key_posts = frozenset({"finance_manager"})
>>> pay = {"event_id": "p1", "type": "payment", "org_id": "SUB01", "t": 1783000000.0, "amount": 2e6,
...        "attributes": {"approver_id": "E1", "approver_post": "finance_manager"}}
>>> watch, matters = ReviewWatch([control]), {}
>>> watch.apply([pay], matters)
[]
>>> [f.key for f in watch.advance({"SUB01": 1783000000.0 + 2 * 86400}, matters)]
[('SUB01', 'E1', 'untrained:2026-07')]
"""

from __future__ import annotations

import datetime as dt
from bisect import insort

import numpy as np

from monitor.core.batch import EventBatch
from monitor.core.findings import Finding
from monitor.core.controls import CompiledControl
from monitor.core.reviews import Judgement, Matter, MatterProcess, ReviewWatch, insort_mark

__all__ = ["ACTS", "KeyPostProcess", "training_coverage"]

# who acts on an event: (the attribute naming them, the attribute naming their post)
ACTS = {"review_step": ("reviewer_id", "reviewer_post"), "payment": ("approver_id", "approver_post"),
        "contract_signed": ("signer_id", "signer_post")}
_CST = dt.timezone(dt.timedelta(hours=8))
KEEP_TRAININGS = 4  # the latest compliance trainings an employee's matter keeps
KEEP_MONTHS = 3  # months of acts kept to list in their month's warning


def _month(t: float) -> str:
    return dt.datetime.fromtimestamp(t, _CST).strftime("%Y-%m")


def _year(t: float) -> int:
    return dt.datetime.fromtimestamp(t, _CST).year


class KeyPostProcess(MatterProcess):
    """An employee: ``marks`` hold ``(t, event_id, "trained", None)``, ``(t, event_id,
    "signed", year)`` and their acts on a key post ``(t, event_id, "act", post)``;
    ``steps`` the acts not judged yet ``(t, event_id, type, post)``."""

    event_types = ("training_completed", "commitment_signed", *ACTS)

    def key(self, control: CompiledControl, row: dict) -> tuple | None:
        attrs, kind = row["attributes"], row["type"]
        if kind in ("training_completed", "commitment_signed"):
            employee = attrs.get("employee_id")
        elif kind in ACTS:
            who, post = ACTS[kind]
            if attrs.get(post) not in control.key_posts or not self._acts(control, row):
                return None
            employee = attrs.get(who)
        else:
            return None
        return None if employee in (None, "") else (row["org_id"], str(employee))

    def may_key(self, control: CompiledControl, kind: str, batch: EventBatch, rows: np.ndarray) -> np.ndarray:
        """An act only by someone on a key post (and a payment only of ``min_amount`` or more)."""
        if kind not in ACTS:
            return np.ones(len(rows), dtype=bool)
        on_post = np.isin(batch.column(f"attributes.{ACTS[kind][1]}", rows), list(control.key_posts))
        if kind == "payment" and control.min_amount is not None:
            on_post &= batch.column("amount", rows) >= control.min_amount
        return on_post

    @staticmethod
    def _acts(control: CompiledControl, row: dict) -> bool:
        kind = row["type"]
        if kind == "review_step":
            return row["attributes"].get("opinion") == "pass"
        if kind == "payment":
            amount = row["amount"]
            return control.min_amount is None or (amount is not None and amount >= control.min_amount)
        return True

    def watched(self, watch: ReviewWatch, control: CompiledControl, m: Matter) -> bool:
        return True  # who acts on a key post is chosen by ``key``

    def on_event(self, watch: ReviewWatch, control: CompiledControl, key: tuple, m: Matter,
                 row: dict) -> list[Finding]:
        attrs, t, eid, kind = row["attributes"], row["t"], row["event_id"], row["type"]
        if kind == "training_completed":
            if attrs.get("course_kind") == "compliance":
                insort_mark(m.marks, (t, eid, "trained", None))
        elif kind == "commitment_signed":
            year = attrs.get("year")
            if isinstance(year, (int, float)) and not isinstance(year, bool):
                insort_mark(m.marks, (t, eid, "signed", int(year)))
        else:
            insort(m.steps, (t, eid, kind, attrs.get(ACTS[kind][1])))
            watch.schedule(control, t + control.lateness, key)
        return []

    def judge(self, watch: ReviewWatch, control: CompiledControl, key: tuple, m: Matter, now: float) -> list[Finding]:
        due = [a for a in m.steps if a[0] + control.lateness <= now]
        if not due:
            return []
        m.steps = [a for a in m.steps if a[0] + control.lateness > now]
        training = control.step("compliance_training")
        window = training.within if training is not None and training.within is not None else 365 * 86400.0
        out: list[Finding] = []
        for t, eid, kind, post in due:
            trained = any(what == "trained" and t - window <= at <= t for at, _e, what, _v in m.marks)
            signed = any(what == "signed" and v == _year(t) for _at, _e, what, v in m.marks)
            month = _month(t)
            watch.judged += [Judgement(control.id, key[0], f"{key[1]}@{month}:training", "training", t, trained),
                             Judgement(control.id, key[0], f"{key[1]}@{month}:commitment", "commitment", t, signed)]
            if trained and signed:
                continue
            m.marks.append((t, eid, "act", post))
            missing = [what for what, ok in (("a compliance training in the "
                                              f"{window / 86400:.0f} days before", trained),
                                             (f"the {_year(t)} compliance commitment", signed)) if not ok]
            acted = [e for at, e, what, _v in m.marks if what == "act" and _month(at) == month]
            out += watch.report(control, key, m, f"untrained:{month}", acted, t,
                                f"on key post {post}, {kind} without {' and without '.join(missing)}",
                                once=f"act:{eid}", post=post or "—")
        self._forget(m, now, window)
        return out

    @staticmethod
    def _forget(m: Matter, now: float, window: float) -> None:
        """Bounded: the latest trainings, this and last year's commitments, the recent months' acts."""
        trainings = [k for k in m.marks if k[2] == "trained"][-KEEP_TRAININGS:]
        this_year = _year(now)
        signed = [k for k in m.marks if k[2] == "signed" and k[3] >= this_year - 1]
        acts = [k for k in m.marks if k[2] == "act" and k[0] >= now - KEEP_MONTHS * 31 * 86400]
        m.marks = sorted(trainings + signed + acts, key=lambda k: (k[0], k[1]))
        kept = {k[1] for k in acts}
        m.found = {f for f in m.found if not f.startswith("act:") or f[4:] in kept}
        # the delivered ids of what is kept (a judged act delivered twice is judged alike again)
        m.ids = {k[1] for k in m.marks} | {s[1] for s in m.steps}

    def due(self, control: CompiledControl, m: Matter) -> list[float]:
        return [t + control.lateness for t, *_rest in m.steps]


def training_coverage(judgements: list[Judgement]) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(org, month) -> (key-post staff who acted, of them trained within the window, of them
    signed for the year), each employee as of their last act in the month.

    >>> training_coverage([Judgement("RC-KEY-01", "SUB01", "E1@2026-07:training", "training", 1.0, True),
    ...                    Judgement("RC-KEY-01", "SUB01", "E1@2026-07:commitment", "commitment", 1.0, False),
    ...                    Judgement("RC-KEY-01", "SUB01", "E2@2026-07:training", "training", 1.0, False),
    ...                    Judgement("RC-KEY-01", "SUB01", "E2@2026-07:commitment", "commitment", 1.0, True)])
    {('SUB01', '2026-07'): (2, 1, 1)}
    """
    latest: dict[tuple[str, str, str], Judgement] = {}
    for j in judgements:
        if j.matter_kind in ("training", "commitment"):
            k = (j.org_id, j.matter_id, j.matter_kind)
            if k not in latest or j.executed_at >= latest[k].executed_at:
                latest[k] = j
    out: dict[tuple[str, str], list] = {}
    for (org, matter, kind), j in latest.items():
        who_when = matter.partition(":")[0]  # employee@YYYY-MM
        row = out.setdefault((org, who_when.rpartition("@")[2]), [set(), 0, 0])
        row[0].add(who_when)
        row[1 if kind == "training" else 2] += j.reviewed
    return {k: (len(v[0]), v[1], v[2]) for k, v in sorted(out.items())}
