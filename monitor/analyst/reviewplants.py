"""The generator's review-process plants: each breach of a review control and its near miss.

The review process (``rules/review_controls.yaml``) is watched from the OA's
events (``matter_submitted``, ``review_step``) and the signing or issuing that
ends a matter:

| scenario | control | planted | near miss |
|---|---|---|---|
| 17 | RC-CON-01 executed_early | a contract signed with no legal review | reviewed five minutes before signing |
| 18 | RC-CON-01 after_reject | signed after the legal review rejected it | a conditional opinion followed by the compliance review |
| 19 | RC-CON-01 own_draft | reviewed by its own drafter | |
| 20 | RC-CON-01 wrong_post | reviewed by the finance compliance officer | |
| 21 | RC-DEC-01 out_of_order | the compliance review before the legal review | both in order before the meeting |
| 22 | RC-CON-01 changed | raised 30% after review, not reviewed again | reviewed again within 5 days |
| 23 | RC-CON-01 silent | no legal review within 5 days of submission | reviewed on the fifth day |
| 24 | RC-REG-01 executed_early | a regulation issued with no legal review | |

It draws from a random generator of its own and is planted last, so the rest
of a seed's stream stays what it was.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from monitor.analyst.fictional import ORGS

__all__ = ["REVIEW_EVENTS_PER_ROUND", "REVIEW_SCENARIOS", "ReviewPlants"]

# scenario -> (control, breach)
REVIEW_EVENTS_PER_ROUND = 41  # what one round of the review plants emits (a test counts them)
REVIEW_SCENARIOS = {
    17: ("RC-CON-01", "executed_early"), 18: ("RC-CON-01", "after_reject"), 19: ("RC-CON-01", "own_draft"),
    20: ("RC-CON-01", "wrong_post"), 21: ("RC-DEC-01", "out_of_order"), 22: ("RC-CON-01", "changed"),
    23: ("RC-CON-01", "silent"), 24: ("RC-REG-01", "executed_early"),
}


class ReviewPlants:
    """Matters that go through the review process, breaches and near misses, emitted through the builder."""

    def __init__(self, builder: Any, seed: int):  # the generator's builder: emit, record, ids, staff
        self.b = builder
        self.rng = random.Random(seed * 7919 + 17)

    def plant(self, rounds: int) -> None:
        for _ in range(rounds):
            for scenario in REVIEW_SCENARIOS:
                getattr(self, f"plant_{scenario}")()

    def _review_at(self, tz, day: int, hour: int, minute: int = 0) -> dt.datetime:
        return (self.b.start + dt.timedelta(days=day)).astimezone(tz).replace(hour=hour, minute=minute, second=0)

    def _matter(self, matter_kind: str, amount: float | None = None, **attributes) -> tuple:
        """A new matter in some org, submitted on some day: (org, tz, day, matter id, drafter, submission id)."""
        rng = self.rng
        org_id, _, _, tz = rng.choices(ORGS, self.b.org_weights)[0]
        day = rng.randrange(3, self.b.days - 20)
        matter = self.b.next_id({"contract": "HT", "regulation": "ZDH", "decision": "JCD"}[matter_kind])
        drafter = self.b.staff_member(org_id, rng, drafter=True)
        sub = self.b.emit("matter_submitted", "governance", org_id, self._review_at(tz, day, 9), amount,
                        matter_id=matter, matter_kind=matter_kind, drafter_id=drafter, **attributes)
        return org_id, tz, day, matter, drafter, sub

    def _step(self, org_id, tz, day, hour, matter, kind, step, opinion="pass", post=None, reviewer=None, minute=0) -> str:
        post = post or {"legal_review": "legal_compliance_officer", "compliance_review": "compliance_head"}[step]
        return self.b.emit("review_step", "governance", org_id, self._review_at(tz, day, hour, minute), matter_id=matter,
                         matter_kind=kind, step=step, reviewer_post=post,
                         reviewer_id=reviewer or self.b.staff_member(org_id, self.rng), opinion=opinion,
                         opinion_no=self.b.next_id("YJ"))

    def _signed(self, org_id, tz, day, hour, matter, amount, minute=0) -> str:
        # The ERP still says the review passed: only the OA's own record shows otherwise.
        return self.b.emit("contract_signed", "procurement", org_id, self._review_at(tz, day, hour, minute), amount,
                         self.rng.choice(self.b.suppliers), contract_id=matter, category="services",
                         method="tender", legal_review="passed")

    def _major(self) -> float:
        return round(self.rng.uniform(1_200_000, 9_000_000), 2)

    def plant_17(self) -> None:
        amount = self._major()
        org, tz, day, matter, _, sub = self._matter("contract", amount)
        self.b.record(17, "violation", [sub, self._signed(org, tz, day + 2, 11, matter, amount)], "signed with no legal review")
        org, tz, day, matter, _, sub = self._matter("contract", amount)
        review = self._step(org, tz, day + 2, 10, matter, "contract", "legal_review", minute=55)
        self.b.record(17, "near_miss", [sub, review, self._signed(org, tz, day + 2, 11, matter, amount)],
                    "review passed five minutes before signing")

    def plant_18(self) -> None:
        amount = self._major()
        org, tz, day, matter, _, sub = self._matter("contract", amount)
        reject = self._step(org, tz, day + 1, 15, matter, "contract", "legal_review", "reject")
        self.b.record(18, "violation", [sub, reject, self._signed(org, tz, day + 3, 10, matter, amount)],
                    "signed after the legal review rejected it")
        org, tz, day, matter, _, sub = self._matter("contract", amount)
        ids = [sub, self._step(org, tz, day + 1, 15, matter, "contract", "legal_review", "conditional"),
               self._step(org, tz, day + 2, 11, matter, "contract", "compliance_review"),
               self._signed(org, tz, day + 3, 10, matter, amount)]
        self.b.record(18, "near_miss", ids, "conditional opinion followed by the compliance review")

    def plant_19(self) -> None:
        amount = self._major()
        org, tz, day, matter, drafter, sub = self._matter("contract", amount)
        review = self._step(org, tz, day + 1, 14, matter, "contract", "legal_review", reviewer=drafter)
        self._signed(org, tz, day + 2, 10, matter, amount)
        self.b.record(19, "violation", [sub, review], "reviewed by its own drafter")

    def plant_20(self) -> None:
        amount = self._major()
        org, tz, day, matter, _, sub = self._matter("contract", amount)
        review = self._step(org, tz, day + 1, 14, matter, "contract", "legal_review", post="finance_compliance_officer")
        self._signed(org, tz, day + 2, 10, matter, amount)
        self.b.record(20, "violation", [sub, review], "legal review by the finance compliance officer")

    def plant_21(self) -> None:
        kind = self.rng.choice(["major_decision", "major_project", "large_fund", "appointment"])
        org, tz, day, matter, _, sub = self._matter("decision", None, kind=kind)
        compliance = self._step(org, tz, day + 1, 10, matter, "decision", "compliance_review")
        self._step(org, tz, day + 2, 10, matter, "decision", "legal_review")
        self.b.emit("decision", "governance", org, self._review_at(tz, day + 3, 15), decision_id=matter, kind=kind,
                  legal_review="passed", meeting="党委会")
        self.b.record(21, "violation", [sub, compliance], "compliance review before the legal review")
        org, tz, day, matter, _, sub = self._matter("decision", None, kind=kind)
        ids = [sub, self._step(org, tz, day + 1, 10, matter, "decision", "legal_review"),
               self._step(org, tz, day + 2, 10, matter, "decision", "compliance_review"),
               self.b.emit("decision", "governance", org, self._review_at(tz, day + 3, 15), decision_id=matter, kind=kind,
                         legal_review="passed", meeting="党委会")]
        self.b.record(21, "near_miss", ids, "both reviews in order before the meeting")

    def plant_22(self) -> None:
        amount = self._major()
        for raised, rereview, kind in ((1.3, False, "violation"), (1.3, True, "near_miss")):
            org, tz, day, matter, _, sub = self._matter("contract", amount)
            ids = [sub, self._step(org, tz, day + 1, 10, matter, "contract", "legal_review"),
                   self._signed(org, tz, day + 2, 10, matter, amount)]
            change = self.b.emit("contract_changed", "procurement", org, self._review_at(tz, day + 8, 10),
                               round(amount * raised, 2), contract_id=matter, original_amount=amount,
                               approval_ref=self.b.next_id("BGSP"))
            if rereview:
                ids += [change, self._step(org, tz, day + 10, 10, matter, "contract", "legal_review")]
                self.b.record(22, kind, ids, "raised 30% and reviewed again within 5 days")
            else:
                self.b.record(22, kind, [sub, change], "raised 30% after review, not reviewed again")

    def plant_23(self) -> None:
        amount = self._major()
        org, tz, day, matter, _, sub = self._matter("contract", amount)
        self.b.record(23, "violation", [sub], "no legal review within 5 days of submission")
        org, tz, day, matter, _, sub = self._matter("contract", amount)
        ids = [sub, self._step(org, tz, day + 4, 16, matter, "contract", "legal_review"),
               self._signed(org, tz, day + 5, 10, matter, amount)]
        self.b.record(23, "near_miss", ids, "reviewed on the fifth day")

    def plant_24(self) -> None:
        org, tz, day, matter, _, sub = self._matter("regulation")
        issued = self.b.emit("regulation_issued", "governance", org, self._review_at(tz, day + 3, 10), regulation_id=matter,
                           legal_review="passed")
        self.b.record(24, "violation", [sub, issued], "regulation issued with no legal review")
