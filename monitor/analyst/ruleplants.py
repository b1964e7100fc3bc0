"""The generator's planted violations of the default rules, each with its near miss.

One method per scenario of ``SCENARIOS`` (``plant_1`` … ``plant_16``), mixed
into the generator's builder, whose helpers (``org``, ``supplier``,
``payment``, ``contract``, ``emit``, ``record``, its random generator) they
use; ``plant(rounds)`` plants every scenario once a round.
"""

from __future__ import annotations

import datetime as dt
import math

from monitor.analyst.fictional import CEST, DEPARTMENT_LIMIT, TENDER

__all__ = ["SCENARIO_7B", "SCENARIOS", "RulePlants"]

SCENARIOS = {
    1: "proc_split_purchase", 2: "proc_debarred_supplier", 3: "proc_contract_without_legal_review",
    4: "proc_contract_change_unapproved", 5: "fin_payment_without_contract", 6: "fin_payment_over_contract",
    7: "fin_duplicate_invoice", 8: "fin_payment_over_authority", 9: "fin_large_payment_to_individual",
    10: "fin_offhours_manual_entry", 11: "inv_disbursement_over_budget", 12: "inv_without_collective_decision",
    13: "inv_overseas_without_filing", 14: "gov_decision_without_legal_review", 15: "gov_sanctioned_counterparty",
    16: "gov_regulation_without_legal_review",
}
SCENARIO_7B = "fin_duplicate_amount"  # scenario 7's second rule: the same amount paid twice


class RulePlants:
    """The rule scenarios' plants; a mixin of the generator's builder."""

    def plant(self, rounds: int) -> None:
        for _ in range(rounds):
            for scenario in SCENARIOS:
                getattr(self, f"plant_{scenario}")()

    def _day(self) -> int:
        return self.rng.randrange(5, self.days - 12)

    def plant_1(self) -> None:
        rng = self.rng
        org_id, _, _, tz = self.org()
        category = rng.choice(list(TENDER))
        cp = self.supplier()
        threshold = TENDER[category]
        day = rng.randrange(5, self.days - 40)
        parts = rng.randint(2, 3)
        amounts = [round(threshold * rng.uniform(1.02, 1.3) / parts, 2) for _ in range(parts)]
        ids = [self.emit("purchase_order", "procurement", org_id, self.business_time(tz, day + 4 * i), a, cp,
                         po_no=self.next_id("CG"), category=category, method=rng.choice(["inquiry", "single_source"]))
               for i, a in enumerate(amounts)]
        self.po_history.setdefault((org_id, cp[0], category), []).extend(
            (self.start.timestamp() + (day + 4 * i) * 86400, a) for i, a in enumerate(amounts))
        self.record(1, "violation", ids, f"{parts} {category} orders summing over {threshold:,.0f}")
        # near-miss: two orders over the threshold, 35 days apart
        cp2 = self.supplier()
        a = round(threshold * 0.6, 2)
        ids = [self.emit("purchase_order", "procurement", org_id, self.business_time(tz, d), a, cp2,
                         po_no=self.next_id("CG"), category=category, method="inquiry") for d in (day - 5, day + 30)]
        self.po_history.setdefault((org_id, cp2[0], category), []).extend(
            (self.start.timestamp() + d * 86400, a) for d in (day - 5, day + 30))
        self.record(1, "near_miss", ids, "sum over threshold but 35 days apart")

    def plant_2(self) -> None:
        org_id, _, _, tz = self.org()
        cp = self.rng.choice([("SUP-D001", "临江市恒泰建材有限公司"), ("SUP-D002", "南岭县宏达劳务有限公司"),
                              ("SUP-D003", "东湖瑞丰商贸有限公司")])
        ids = [self.emit("purchase_order", "procurement", org_id, self.business_time(tz), self.money(5_000, 90_000), cp,
                         po_no=self.next_id("CG"), category="goods", method="inquiry")]
        self.record(2, "violation", ids, f"order to debarred {cp[0]}")
        expired = ("SUP-D004", "西山永盛机电设备有限公司")
        ids = [self.emit("purchase_order", "procurement", org_id, self.business_time(tz), self.money(5_000, 90_000), expired,
                         po_no=self.next_id("CG"), category="goods", method="inquiry")]
        self.record(2, "near_miss", ids, "supplier whose debarment expired")

    def plant_3(self) -> None:
        org_id, _, _, tz = self.org()
        cp = self.supplier()
        when = self.business_time(tz, self._day())
        cid = self.next_id("HT")
        ids = [self.emit("contract_signed", "procurement", org_id, when, self.money(100_000, 900_000), cp, contract_id=cid,
                         category="services", method="inquiry", legal_review=self.rng.choice(["pending", "none", "failed"]))]
        self.record(3, "violation", ids, "signed before legal review passed")

    def plant_4(self) -> None:
        org_id, _, _, tz = self.org()
        cp = self.supplier()
        day = self._day()
        original = self.money(500_000, 3_000_000)
        cid = self.contract(org_id, tz, self.business_time(tz, day), original, cp)
        ids = [self.emit("contract_changed", "procurement", org_id, self.business_time(tz, day + 5),
                         round(original * self.rng.uniform(1.15, 1.6), 2), cp, contract_id=cid, original_amount=original)]
        self.record(4, "violation", ids, "raised over 10% without approval")
        cp2 = self.supplier()
        cid2 = self.contract(org_id, tz, self.business_time(tz, day), original, cp2)
        ids = [self.emit("contract_changed", "procurement", org_id, self.business_time(tz, day + 6),
                         math.floor(original * 110) / 100, cp2, contract_id=cid2, original_amount=original)]
        self.record(4, "near_miss", ids, "raised by exactly 10%")

    def plant_5(self) -> None:
        org_id, _, _, tz = self.org()
        cp = self.supplier()
        ids = [self.payment(org_id, tz, self.business_time(tz), self.unique_amount(org_id, cp[0], 50_000, 400_000), cp)]
        self.record(5, "violation", ids, "no contract")
        ids = [self.payment(org_id, tz, self.business_time(tz), 49_999.99, self.supplier())]
        self.record(5, "near_miss", ids, "just under the limit")

    def plant_6(self) -> None:
        rng = self.rng
        org_id, _, _, tz = self.org()
        cp = self.supplier()
        day = self._day()
        amount = self.unique_amount(org_id, cp[0], 300_000, 2_000_000)
        signed = self.business_time(tz, day, hour_range=(9, 11))
        cid = self.contract(org_id, tz, signed, amount, cp)
        contract_event = self.events[-1][1]["event_id"]
        # The advance is paid the day of signing: it reaches riskwatch before the contract does.
        first = round(amount * 0.5, 2)
        ids = [contract_event, self.payment(org_id, tz, signed + dt.timedelta(hours=3), first, cp, cid)]
        ids.append(self.payment(org_id, tz, self.business_time(tz, day + rng.randint(3, 10)),
                                round(amount * rng.uniform(0.55, 0.8), 2), cp, cid))
        self.record(6, "violation", ids, "paid over the contract amount; advance arrives before the contract")
        cp2 = self.supplier()
        amount2 = float(rng.randrange(300_000, 2_000_000))  # whole yuan: the two parts add up exactly
        first2 = float(int(amount2 * 0.4))
        cid2 = self.contract(org_id, tz, self.business_time(tz, day), amount2, cp2)
        ids = [self.events[-1][1]["event_id"],
               self.payment(org_id, tz, self.business_time(tz, day + 2), first2, cp2, cid2),
               self.payment(org_id, tz, self.business_time(tz, day + 9), amount2 - first2, cp2, cid2)]
        self.record(6, "near_miss", ids, "paid exactly the contract amount")

    def plant_7(self) -> None:
        org_id, _, _, tz = self.org()
        cp = self.supplier()
        day = self._day()
        cid = self.contract(org_id, tz, self.business_time(tz, day - 4), self.money(5_000_000, 8_000_000), cp)
        invoice = self.invoice()
        a1 = self.unique_amount(org_id, cp[0], 60_000, 300_000)
        a2 = self.unique_amount(org_id, cp[0], 60_000, 300_000)
        ids = [self.payment(org_id, tz, self.business_time(tz, day), a1, cp, cid, invoice_no=invoice),
               self.payment(org_id, tz, self.business_time(tz, min(self.days - 1, day + 40)), a2, cp, cid, invoice_no=invoice)]
        self.record(7, "violation", ids, "same invoice paid twice, 40 days apart")
        a3 = self.unique_amount(org_id, cp[0], 60_000, 300_000)
        ids = [self.payment(org_id, tz, self.business_time(tz, day + 2, hour_range=(9, 10)), a3, cp, cid),
               self.payment(org_id, tz, self.business_time(tz, day + 6, hour_range=(9, 10)), a3, cp, cid)]
        self.record(7, "violation", ids, "same amount twice within 7 days", rule=SCENARIO_7B)
        a4 = self.unique_amount(org_id, cp[0], 60_000, 300_000)
        ids = [self.payment(org_id, tz, self.business_time(tz, day + 1), a4, cp, cid),
               self.payment(org_id, tz, self.business_time(tz, day + 10), a4, cp, cid)]
        self.record(7, "near_miss", ids, "same amount 9 days apart", rule=SCENARIO_7B)

    def plant_8(self) -> None:
        org_id, _, _, tz = self.org()
        cp = self.supplier()
        day = self._day()
        cid = self.contract(org_id, tz, self.business_time(tz, day - 3), self.money(5_000_000, 8_000_000), cp)
        limit = DEPARTMENT_LIMIT.get(org_id, 500_000.0)
        ids = [self.payment(org_id, tz, self.business_time(tz, day), self.unique_amount(org_id, cp[0], limit + 1, limit * 1.8),
                            cp, cid, approver="department")]
        self.record(8, "violation", ids, "department approved above its limit")
        ids = [self.payment(org_id, tz, self.business_time(tz, day + 1), limit, cp, cid, approver="department")]
        self.record(8, "near_miss", ids, "exactly at the department limit")

    def plant_9(self) -> None:
        org_id, _, _, tz = self.org()
        person = ("IND-" + str(self.rng.randrange(10**6)), self.person())
        day = self._day()
        cid = self.contract(org_id, tz, self.business_time(tz, day - 2), 2_000_000.0, person, category="services")
        ids = [self.payment(org_id, tz, self.business_time(tz, day), self.unique_amount(org_id, person[0], 200_000, 480_000),
                            person, cid, payee_type="individual")]
        self.record(9, "violation", ids, "large payment to a person")
        ids = [self.payment(org_id, tz, self.business_time(tz, day + 1), 199_999.0, person, cid, payee_type="individual")]
        self.record(9, "near_miss", ids, "just under the limit")

    def plant_10(self) -> None:
        rng = self.rng
        org_id, _, _, tz = self.org()
        day = self._day()
        base = (self.start + dt.timedelta(days=day)).astimezone(tz)
        while base.isoweekday() > 5:  # a weekday, so that 19:59 is in hours
            base += dt.timedelta(days=1)
        night = base.replace(hour=rng.choice([22, 23, 1, 5]), minute=rng.randrange(60))
        ids = [self.emit("journal_entry", "finance", org_id, night, self.money(1_000_000, 9_000_000), entry_no=self.next_id("PZH"),
                         manual=True, account="2202 应付账款", posted_by=self.person())]
        self.record(10, "violation", ids, "manual entry at night")
        evening = base.replace(hour=19, minute=59)
        ids = [self.emit("journal_entry", "finance", org_id, evening, self.money(1_000_000, 9_000_000), entry_no=self.next_id("PZH"),
                         manual=True, account="2202 应付账款", posted_by=self.person())]
        self.record(10, "near_miss", ids, "19:59 local")
        # 15:00 in Frankfurt is 21:00 in Beijing: local time decides, so this is in hours.
        frankfurt = (self.start + dt.timedelta(days=day)).astimezone(CEST)
        while frankfurt.isoweekday() > 5:
            frankfurt += dt.timedelta(days=1)
        ids = [self.emit("journal_entry", "finance", "SUB12", frankfurt.replace(hour=15, minute=0), self.money(1_000_000, 3_000_000),
                         entry_no=self.next_id("PZH"), manual=True, account="1002 Bank", posted_by="K. Müller")]
        self.record(10, "near_miss", ids, "15:00 in Frankfurt (21:00 in Beijing)")

    def plant_11(self) -> None:
        org_id, _, _, tz = self.org()
        day = self._day()
        budget = self.money(5_000_000, 50_000_000)
        project = self.next_id("XM")
        ids = [self.emit("investment_approval", "investment", org_id, self.business_time(tz, day), budget,
                         project_id=project, decision_ref=self.next_id("DS"), overseas=False)]
        ids += [self.emit("investment_disbursement", "investment", org_id, self.business_time(tz, day + 2 + 3 * i),
                          round(budget * 0.4, 2), project_id=project) for i in range(3)]
        self.record(11, "violation", ids, "120% of the approved budget")
        budget2 = 10_000_000.0
        project2 = self.next_id("XM")
        ids = [self.emit("investment_approval", "investment", org_id, self.business_time(tz, day), budget2,
                         project_id=project2, decision_ref=self.next_id("DS"), overseas=False)]
        ids += [self.emit("investment_disbursement", "investment", org_id, self.business_time(tz, day + 3), 5_500_000.0, project_id=project2),
                self.emit("investment_disbursement", "investment", org_id, self.business_time(tz, day + 6), 5_500_000.0, project_id=project2)]
        self.record(11, "near_miss", ids, "exactly 110% of the budget")

    def plant_12(self) -> None:
        org_id, _, _, tz = self.org()
        ids = [self.emit("investment_approval", "investment", org_id, self.business_time(tz), self.money(10_000_000, 80_000_000),
                         project_id=self.next_id("XM"), overseas=False)]
        self.record(12, "violation", ids, "no collective decision")
        ids = [self.emit("investment_approval", "investment", org_id, self.business_time(tz), 9_999_999.0,
                         project_id=self.next_id("XM"), overseas=False)]
        self.record(12, "near_miss", ids, "just under the limit")

    def plant_13(self) -> None:
        org_id, _, _, tz = self.org()
        ids = [self.emit("investment_approval", "investment", org_id, self.business_time(tz), self.money(1_000_000, 9_000_000),
                         project_id=self.next_id("XM"), decision_ref=self.next_id("DS"), overseas=True)]
        self.record(13, "violation", ids, "overseas without filing")

    def plant_14(self) -> None:
        org_id, _, _, tz = self.org()
        ids = [self.emit("decision", "governance", org_id, self.business_time(tz), decision_id=self.next_id("JCD"),
                         kind=self.rng.choice(["major_decision", "major_project", "large_fund"]),
                         legal_review=self.rng.choice(["pending", "none"]), meeting="总经理办公会")]
        self.record(14, "violation", ids, "decided before legal review")

    def plant_15(self) -> None:
        org_id, _, _, tz = self.org()
        cp = self.rng.choice([("SUP-S001", "Northwind Dual-Use Trading LLC"), ("SUP-S002", "Baltic Meridian Shipping Ltd")])
        ids = [self.payment(org_id, tz, self.business_time(tz), self.unique_amount(org_id, cp[0], 1_000, 40_000), cp)]
        self.record(15, "violation", ids, f"payment to sanctioned {cp[0]}")

    def plant_16(self) -> None:
        org_id, _, _, tz = self.org()
        ids = [self.emit("regulation_issued", "governance", org_id, self.business_time(tz), regulation_id=self.next_id("ZDH"),
                         legal_review="none")]
        self.record(16, "violation", ids, "issued without legal review")
