"""The generator's master data and tender lots: who stands behind a counterparty.

Every org sends its staff (``employee_profile``) and the suppliers that bid
(``supplier_profile``) at the start of the period, each with their own phone,
bank account, address and identity numbers; tender lots are awarded all
through it, competitively: a few bidders from the pool, bids spread as real
prices spread, the lowest wins. Into that the typologies are planted, each with
a near miss that must stay quiet:

| scenario | rule | planted | near miss |
|---|---|---|---|
| 25 | proc_supplier_employee_link | a supplier paid on the bank account of an employee | a legal representative with an employee's name but another identity number |
| 26 | proc_supplier_employee_same_department | an order by the department of the employee whose phone the supplier gives | the employee's old phone, changed before the order |
| 27 | proc_bidder_collusion | two bidders whose bonds come from one bank account; a lot with identical bids | bids at uneven steps by unrelated bidders |
| 28 | proc_bid_screens | a winner set apart from cover bids pressed together | a tight lot evenly spread |
| 29 | proc_cover_bidder | a bidder losing seven lots in a row to the same two | a bidder losing six lots to six winners |
| 30 | proc_favoured_supplier | one supplier winning all six lots of a department | five lots with two winners |

It draws from a random generator of its own, so the rest of a seed's stream
stays as it was.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from monitor.analyst.fictional import BRANDS, CITIES, GIVEN_NAMES, SUFFIXES, SURNAMES, TRADES
from monitor.core.bidscreens import screen, steps, ties

__all__ = ["DEPARTMENTS", "PARTY_SCENARIOS", "TenderPlants"]

PARTY_SCENARIOS = {
    25: "proc_supplier_employee_link", 26: "proc_supplier_employee_same_department", 27: "proc_bidder_collusion",
    28: "proc_bid_screens", 29: "proc_cover_bidder", 30: "proc_favoured_supplier",
}
DEPARTMENTS = ["采购部", "工程部", "物资部", "信息中心", "综合办公室", "财务部"]
_POSTS = ["专员", "主管", "经理", "工程师", "会计"]
_ROADS = ["滨江路", "解放路", "人民路", "建设路", "中山路", "新华路", "长江路", "和平路", "光明街", "青年路"]


class TenderPlants:
    """Master data, clean tender lots and the planted typologies, emitted through the builder."""

    def __init__(self, builder: Any, seed: int, orgs: list[tuple]):  # the generator's builder: emit, record, ids
        self.b = builder
        self.orgs = orgs
        self.rng = random.Random(seed * 104729 + 29)
        self.serial = 0
        self.staff: dict[str, list[dict]] = {}  # org -> its employees' attributes
        self.profiled: set[tuple[str, str]] = set()  # (org, supplier id) with a profile sent
        self.bids: dict[str, tuple[str, int]] = {}  # tender_bid event id -> (bidder, rank)
        self.moved: set[str] = set()  # employees whose phone a near miss changed

    # --- identities ------------------------------------------------------------------
    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def phone(self) -> str:
        return f"1{self.rng.choice('3456789')}{self._next():09d}"

    def bank(self) -> str:
        return f"6222{self.rng.randrange(100, 999)}{self._next():09d}"

    def address(self) -> str:
        n = self._next()
        return f"{self.rng.choice(['江城市', '临江市', '南岭市'])}{self.rng.choice(_ROADS)}{n % 997 + 1}号{n % 30 + 1}-{n % 7 + 1}01"

    def id_number(self) -> str:
        born = dt.date(1960, 1, 1) + dt.timedelta(days=self.rng.randrange(365 * 40))
        return f"3301{self.rng.randrange(10, 99)}{born:%Y%m%d}{self._next() % 10000:04d}"

    def person(self) -> str:
        return self.rng.choice(SURNAMES) + self.rng.choice(GIVEN_NAMES)

    def new_supplier(self) -> tuple[str, str]:
        """A supplier of its own, outside the shared pool."""
        rng = self.rng
        name = rng.choice(CITIES) + "市" + rng.choice(BRANDS) + rng.choice(BRANDS) + rng.choice(TRADES) + rng.choice(SUFFIXES)
        return f"SUP-T{self._next():06d}", name

    def holding(self) -> str:
        """A shareholding company's name, one of its own."""
        return f"{self.rng.choice(CITIES)}{self.rng.choice(BRANDS)}{self._next():05d}投资合伙企业（有限合伙）"

    def org(self) -> tuple:
        return self.rng.choices(self.orgs, [w for _, _, w, _ in self.orgs])[0]

    def _start(self, tz) -> dt.datetime:
        return (self.b.start - dt.timedelta(days=2)).astimezone(tz).replace(hour=9, minute=0, second=0)

    # --- master data -------------------------------------------------------------------
    def staff_of(self, org: tuple, per_org: int) -> list[dict]:
        org_id, _, _, tz = org
        if org_id not in self.staff:
            people = []
            for i in range(per_org):
                attrs = {"employee_id": f"{org_id}-E{i + 1:04d}", "name": self.person(), "phone": self.phone(),
                         "bank_account": self.bank(), "address": self.address(), "id_number": self.id_number(),
                         "department": DEPARTMENTS[i % len(DEPARTMENTS)], "post": self.rng.choice(_POSTS)}
                self.employee(org, attrs, self._start(tz))
                people.append(attrs)
            self.staff[org_id] = people
        return self.staff[org_id]

    def employee(self, org: tuple, attrs: dict, when: dt.datetime) -> str:
        return self.b.emit("employee_profile", "governance", org[0], when, **attrs)

    def supplier_profile(self, org: tuple, cp: tuple[str, str], when: dt.datetime | None = None, **overrides) -> str:
        attrs = {"credit_code": f"91330{self._next():013d}", "legal_rep": self.person(), "legal_rep_id": self.id_number(),
                 "phone": self.phone(), "bank_accounts": self.bank(), "address": self.address(),
                 "shareholders": [self.person(), self.holding()], "shareholder_ids": [self.id_number()]}
        attrs.update(overrides)
        self.profiled.add((org[0], cp[0]))
        return self.b.emit("supplier_profile", "procurement", org[0], when or self._start(org[3]), counterparty=cp, **attrs)

    def bidder(self, org: tuple) -> tuple[str, str]:
        """A supplier from the pool, profiled in this org before it bids."""
        cp = self.rng.choice(self.b.suppliers)
        if (org[0], cp[0]) not in self.profiled:
            self.supplier_profile(org, cp)
        return cp

    # --- lots ----------------------------------------------------------------------------
    def lot(self, org: tuple, day: int, bids: list[tuple[tuple[str, str], float]], department: str | None = None,
            winner: tuple[str, str] | None = None) -> list[str]:
        """One awarded lot: a tender_bid per bid; ranked by price unless a winner is named."""
        org_id, _, _, tz = org
        when = (self.b.start + dt.timedelta(days=day)).astimezone(tz).replace(hour=16, minute=0, second=0)
        lot_id = self.b.next_id("ZB")
        department = department or self.rng.choice(DEPARTMENTS[:5])
        ranked = sorted(bids, key=lambda pair: pair[1])
        if winner is not None:
            ranked.sort(key=lambda pair: pair[0] != winner)
        won_by = ranked[0][0][0]
        ids = []
        for rank, (cp, amount) in enumerate(ranked, 1):
            ids.append(self.b.emit("tender_bid", "procurement", org_id, when, amount, cp, lot_id=lot_id, rank=rank,
                                   bids_in_lot=len(bids), winner_id=won_by, department=department))
            self.bids[ids[-1]] = (cp[0], rank)
        return ids

    def competitive_bids(self, org: tuple, n: int, budget: float, spread: float = 0.08,
                         bidders: list | None = None) -> list[tuple[tuple[str, str], float]]:
        """Bids spread as independent prices spread. Now and then such a lot looks
        rigged by chance (docs/bid-screens.md: about 2 in 1,000 cross the screens);
        it is drawn again, so that the ground truth holds exactly what was planted."""
        bidders = bidders or [self.bidder(org) for _ in range(n)]
        while True:
            amounts = [round(budget * self.rng.lognormvariate(0, spread)) for _ in bidders]
            if not _looks_rigged(amounts):
                return list(zip(bidders, map(float, amounts)))

    def clean_lots(self, count: int) -> None:
        rng = self.rng
        for _ in range(count):
            org = self.org()
            budget = 10 ** rng.uniform(5.5, 7.5)
            self.lot(org, rng.randrange(self.b.days), self.competitive_bids(org, rng.randint(3, 6), budget))

    # --- the plants --------------------------------------------------------------------
    def plant(self, rounds: int, staff_per_org: int) -> None:
        for org in self.orgs:
            self.staff_of(org, staff_per_org)
        for _ in range(rounds):
            for scenario in PARTY_SCENARIOS:
                getattr(self, f"plant_{scenario}")(self.org())

    def _day(self, lo: int = 5, margin: int = 5) -> int:
        return self.rng.randrange(lo, self.b.days - margin)

    def _business(self, org: tuple, day: int, hour: int = 10) -> dt.datetime:
        return (self.b.start + dt.timedelta(days=day)).astimezone(org[3]).replace(hour=hour, minute=0, second=0)

    def _paid(self, org: tuple, cp: tuple[str, str], day: int) -> list[str]:
        """A contract with a new supplier, and a payment on it two days later."""
        amount = round(self.rng.uniform(60_000, 300_000), 2)
        contract = self.b.next_id("HT")
        signed = self.b.emit("contract_signed", "procurement", org[0], self._business(org, day), round(amount * 3, 2), cp,
                             contract_id=contract, category="services", method="inquiry", legal_review="passed")
        when = self._business(org, day + 2, 11)
        paid = self.b.emit("payment", "finance", org[0], when, amount, cp, arrival=when + dt.timedelta(seconds=90),
                           payment_no=self.b.next_id("FKD"), contract_id=contract, invoice_no=self.b.invoice(),
                           payee_type="company", approver_level=self.b.approver(org[0], amount))
        return [signed, paid]

    def _order(self, org: tuple, cp: tuple[str, str], day: int, department: str) -> str:
        return self.b.emit("purchase_order", "procurement", org[0], self._business(org, day),
                           round(self.rng.uniform(20_000, 400_000), 2), cp, po_no=self.b.next_id("CG"),
                           category="services", method="inquiry", department=department)

    def plant_25(self, org: tuple) -> None:
        insider = self.rng.choice(self.staff[org[0]])
        cp = self.new_supplier()
        self.supplier_profile(org, cp, bank_accounts=insider["bank_account"])
        self.b.record(25, "violation", self._paid(org, cp, self._day()),
                      f"{cp[0]} is paid on the bank account of employee {insider['employee_id']}")
        namesake = self.rng.choice(self.staff[org[0]])
        cp2 = self.new_supplier()
        self.supplier_profile(org, cp2, legal_rep=namesake["name"])  # another person of the same name
        self.b.record(25, "near_miss", self._paid(org, cp2, self._day()),
                      f"{cp2[0]}'s legal representative shares only a name with {namesake['employee_id']}")

    def plant_26(self, org: tuple) -> None:
        insider = self.rng.choice(self.staff[org[0]])
        cp = self.new_supplier()
        self.supplier_profile(org, cp, phone=insider["phone"])
        day = self._day()
        order = self._order(org, cp, day, insider["department"])
        self.b.record(26, "violation", [order], f"{insider['department']} orders from {cp[0]}, whose phone is "
                                                f"{insider['employee_id']}'s")
        # near miss: the supplier gives a phone the employee gave up before the order
        mover = self.rng.choice([p for p in self.staff[org[0]] if p["employee_id"] not in self.moved])
        self.moved.add(mover["employee_id"])  # once: its phones then follow each other in business time
        cp2 = self.new_supplier()
        old_phone = mover["phone"]
        mover["phone"] = self.phone()
        day2 = self._day(lo=10)
        self.employee(org, mover, self._business(org, day2 - 5, 9))
        self.supplier_profile(org, cp2, when=self._business(org, day2 - 3, 9), phone=old_phone)
        order2 = self._order(org, cp2, day2, mover["department"])
        self.b.record(26, "near_miss", [order2], f"{cp2[0]} gives {mover['employee_id']}'s phone of before")

    def plant_27(self, org: tuple) -> None:
        rng = self.rng
        budget = 10 ** rng.uniform(6, 7.5)
        a, b = self.new_supplier(), self.new_supplier()
        shared = self.bank()
        self.supplier_profile(org, a, bank_accounts=shared)
        self.supplier_profile(org, b, bank_accounts=[self.bank(), shared])
        bids = self.competitive_bids(org, 0, budget, bidders=[a, b] + [self.bidder(org) for _ in range(rng.randint(1, 3))])
        ids = self.lot(org, self._day(), bids)
        self.b.record(27, "violation", ids, f"{a[0]} and {b[0]} bid with bonds from one account")
        bids = self.competitive_bids(org, rng.randint(3, 5), budget)
        bids[-1] = (bids[-1][0], bids[0][1])  # a copied price
        ids = self.lot(org, self._day(), bids)
        self.b.record(27, "violation", ids, "identical bids")
        step = round(budget * 0.02, -2)
        uneven = [0, step, 2 * step + round(step * 0.05, -2) + 100, 3 * step + round(step * 0.11, -2) + 100]
        bidders = [self.bidder(org) for _ in uneven]
        ids = self.lot(org, self._day(), [(cp, round(budget, -2) + d) for cp, d in zip(bidders, uneven)])
        self.b.record(27, "near_miss", ids, "bids at uneven steps, unrelated bidders")

    def plant_28(self, org: tuple) -> None:
        rng = self.rng
        budget = round(10 ** rng.uniform(6, 7.5), -2)
        n = rng.randint(5, 7)
        covers = [round(budget * (1.04 + 0.004 * i + rng.uniform(0, 0.002)), -2) for i in range(n - 1)]
        ids = self.lot(org, self._day(), list(zip([self.bidder(org) for _ in range(n)], [budget] + covers)))
        self.b.record(28, "violation", ids, "cover bids pressed together 4% above the winner")
        even = [round(budget * (1 + 0.01 * i + rng.uniform(-0.001, 0.001)), -2) for i in range(n)]
        ids = self.lot(org, self._day(), list(zip([self.bidder(org) for _ in range(n)], even)))
        self.b.record(28, "near_miss", ids, "a tight lot evenly spread")

    def plant_29(self, org: tuple) -> None:
        rng = self.rng
        cover, partners = self.new_supplier(), [self.new_supplier(), self.new_supplier()]
        for cp in (cover, *partners):
            self.supplier_profile(org, cp)
        days = sorted(rng.sample(range(2, self.b.days - 2), 7))
        ids = []
        for i, day in enumerate(days):
            winner = partners[i % 2]
            budget = 10 ** rng.uniform(6, 7)
            bids = [(winner, round(budget, -2)), (cover, round(budget * rng.uniform(1.06, 1.12), -2))]
            bids += [(self.bidder(org), round(budget * rng.uniform(1.05, 1.2), -2)) for _ in range(rng.randint(1, 2))]
            ids += self.lot(org, day, bids, winner=winner)
        self.b.record(29, "violation", [e for e in ids if self._bid_of(e, cover)],
                      f"{cover[0]} lost seven lots, all to {partners[0][0]} or {partners[1][0]}")
        loser = self.new_supplier()
        self.supplier_profile(org, loser)
        ids = []
        for day in sorted(rng.sample(range(2, self.b.days - 2), 6)):
            winner = self.bidder(org)
            budget = 10 ** rng.uniform(6, 7)
            ids += self.lot(org, day, [(winner, round(budget, -2)), (loser, round(budget * 1.1, -2))], winner=winner)
        self.b.record(29, "near_miss", [e for e in ids if self._bid_of(e, loser)], f"{loser[0]} lost six lots to six winners")

    def _bid_of(self, event_id: str, cp: tuple[str, str]) -> bool:
        return self.bids[event_id][0] == cp[0]

    def plant_30(self, org: tuple) -> None:
        rng = self.rng
        favourite = self.new_supplier()
        self.supplier_profile(org, favourite)
        department = f"{rng.choice(['基建', '设备', '后勤', '技改'])}项目部{self._next()}"  # a department of its own
        ids = []
        for day in sorted(rng.sample(range(2, self.b.days - 2), 6)):
            budget = 10 ** rng.uniform(6, 7)
            bids = [(favourite, round(budget, -2))] + [(self.bidder(org), round(budget * rng.uniform(1.03, 1.2), -2))
                                                      for _ in range(rng.randint(2, 3))]
            ids += self.lot(org, day, bids, department=department, winner=favourite)
        self.b.record(30, "violation", [e for e in ids if self._bid_of(e, favourite)],
                      f"{favourite[0]} won all six lots of {department}")
        other = f"{rng.choice(['基建', '设备', '后勤', '技改'])}项目部{self._next()}"
        second = self.new_supplier()
        self.supplier_profile(org, second)
        ids = []
        for i, day in enumerate(sorted(rng.sample(range(2, self.b.days - 2), 5))):
            winner = second if i == 2 else favourite
            budget = 10 ** rng.uniform(6, 7)
            bids = [(winner, round(budget, -2)), (self.bidder(org), round(budget * rng.uniform(1.03, 1.2), -2))]
            ids += self.lot(org, day, bids, department=other, winner=winner)
        self.b.record(30, "near_miss", [e for e in ids if self.bids[e][1] == 1],
                      f"five lots of {other}, two winners")


def _looks_rigged(bids: list[float]) -> bool:
    """What the default pack's lot rules would flag (rules/params.yaml's thresholds)."""
    return (ties(bids) > 0 or steps(bids) >= 4
            or (len(bids) >= 5 and screen("cv", bids) < 0.03 and screen("rd", bids) > 2.0))
