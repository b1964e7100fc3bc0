"""A realistic event stream for a fictional group, with planted violations.

江城控股集团 (Jiangcheng Holdings) has twelve subsidiaries, one of them in
Frankfurt, and a few thousand suppliers. Ninety days of finance, procurement,
investment and governance events are generated; every default scenario is
planted several times, together with near-misses that must not alert, and a
few malformed records. Source systems sync on their own schedules, so the
stream arrives in arrival order, not business order (a payment can come
before the contract it pays).

Anomalies that no rule names are planted too, for the detectors: payments
many times a regular supplier's usual amount, bursts of payments to a
supplier nobody paid before, and runs of made-up round-number journal
entries that break Benford's law in one org-month. Amounts elsewhere are
drawn log-uniformly over whole decades, so their first digits follow Benford.

The ground truth comes with it: ``Truth.instances`` lists each planted
violation (scenario, rule, the events that make it), each near-miss and each
anomaly.

>>> stream = generate(events=3000, seed=7)
>>> len(stream.lines) >= 3000, {i.rule for i in stream.truth.violations()} >= {"proc_split_purchase"}
(True, True)
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.analyst.fictional import BRANDS as _BRANDS
from monitor.analyst.fictional import CST, DEPARTMENT_LIMIT, ORGS, TENDER
from monitor.analyst.fictional import CITIES as _CITIES
from monitor.analyst.fictional import GIVEN_NAMES as _GIVEN
from monitor.analyst.fictional import SUFFIXES as _SUFFIX
from monitor.analyst.fictional import SURNAMES as _SURNAMES
from monitor.analyst.fictional import TRADES as _TRADES
from monitor.analyst.matters import MATTER_SCENARIOS, MatterPlants
from monitor.analyst.reviewplants import REVIEW_EVENTS_PER_ROUND, REVIEW_SCENARIOS, ReviewPlants
from monitor.analyst.ruleplants import SCENARIOS, RulePlants
from monitor.analyst.tenders import PARTY_SCENARIOS, TenderPlants
from monitor.analyst.trades import TRADE_SCENARIOS, TradePlants

__all__ = ["GeneratedStream", "Instance", "ORGS", "Truth", "generate"]

DEFAULT_START = dt.datetime(2026, 6, 1, tzinfo=CST)
FRAMEWORK_RENEWED_AFTER = 30  # payments under one framework contract (sized for 60) before it is renewed

_SOURCES = {"finance": "erp-finance", "procurement": "srm-procurement", "investment": "inv-mgmt", "governance": "oa-governance"}

# Anomalies no rule names, which the default detectors should find.
ANOMALIES = {101: "det_amount_outlier", 102: "det_counterparty_velocity", 103: "det_benford_journal"}


@dataclass
class Instance:
    """One planted case: a violation a rule must flag, a near-miss it must not,
    or an anomaly no rule names that a detector should find."""

    scenario: int
    rule: str
    kind: str  # "violation", "near_miss" or "anomaly"
    event_ids: list[str]
    note: str = ""


@dataclass
class Truth:
    instances: list[Instance] = field(default_factory=list)
    malformed: int = 0

    def violations(self) -> list[Instance]:
        return [i for i in self.instances if i.kind == "violation"]

    def near_misses(self) -> list[Instance]:
        return [i for i in self.instances if i.kind == "near_miss"]

    def anomalies(self) -> list[Instance]:
        return [i for i in self.instances if i.kind == "anomaly"]

    def to_jsonl(self) -> bytes:
        return b"".join(orjson.dumps(i.__dict__) + b"\n" for i in self.instances)


@dataclass
class GeneratedStream:
    lines: list[bytes]  # JSONL lines in arrival order, newline-terminated
    truth: Truth
    start: dt.datetime
    days: int

    def write(self, path) -> None:
        with open(path, "wb") as f:
            f.writelines(self.lines)


class _Builder(RulePlants):
    def __init__(self, n: int, seed: int, start: dt.datetime, days: int):
        self.rng = random.Random(seed)
        self.n, self.start, self.days = n, start, days
        self.events: list[tuple[float, dict]] = []  # (arrival epoch, event)
        self.truth = Truth()
        self.seq = 0
        self.invoice_seq = 0
        self.used_amounts: set[tuple] = set()
        self.po_history: dict[tuple, list[tuple[float, float]]] = {}
        rng = self.rng
        n_suppliers = max(200, min(4000, n // 25))
        names = set()
        self.suppliers: list[tuple[str, str]] = []
        while len(self.suppliers) < n_suppliers:
            name = rng.choice(_CITIES) + rng.choice(_BRANDS) + rng.choice(_TRADES) + rng.choice(_SUFFIX)
            if name in names:
                name = rng.choice(_CITIES) + "市" + name
                if name in names:
                    continue
            names.add(name)
            self.suppliers.append((f"SUP-{len(self.suppliers) + 1:05d}", name))
        self.org_weights = [w for _, _, w, _ in ORGS]
        self.regulars: list[tuple] = []  # (org, tz, counterparty, usual amount, contract, days between payments)
        self.renewals: dict[str, list[tuple[int, str]]] = {}  # first contract -> (from day, contract in force)
        # per org, the staff who review, draft and take part: trained and committed (monitor.analyst.matters)
        self.staff: dict[str, list[str]] = {}

    # --- helpers ---------------------------------------------------------------
    def org(self) -> tuple[str, str, int, dt.timezone]:
        return self.rng.choices(ORGS, self.org_weights)[0]

    def supplier(self) -> tuple[str, str]:
        return self.rng.choice(self.suppliers)

    def person(self) -> str:
        return self.rng.choice(_SURNAMES) + self.rng.choice(_GIVEN)

    def staff_member(self, org_id: str, rng: random.Random, drafter: bool = False) -> str:
        """One of the org's trained staff (an id of nobody's, before they are known): reviewers
        from the first half, drafters from the second, so that nobody reviews their own draft by chance."""
        staff = self.staff.get(org_id)
        if not staff:
            return f"E{rng.randrange(1000, 9999)}"
        half = len(staff) // 2
        return rng.choice(staff[half:] if drafter else staff[:half])

    def business_time(self, tz, day: int | None = None, hour_range=(8, 19)) -> dt.datetime:
        rng = self.rng
        while True:
            d = rng.randrange(self.days) if day is None else day
            base = (self.start + dt.timedelta(days=d)).astimezone(tz)
            when = base.replace(hour=rng.randint(*hour_range), minute=rng.randrange(60), second=rng.randrange(60))
            if when.isoweekday() <= 5 or day is not None:
                return when

    def money(self, lo: float, hi: float) -> float:
        return round(self.rng.uniform(lo, hi), 2)

    def money_log(self, lo: float, decades: int) -> float:
        """Log-uniform over whole decades from ``lo``: first digits follow Benford's law,
        as amounts that pile up from real business do."""
        return round(lo * 10 ** self.rng.uniform(0, decades), 2)

    def new_supplier(self) -> tuple[str, str]:
        """A supplier not in the shared pool: nobody has paid it before."""
        rng = self.rng
        name = rng.choice(_CITIES) + "市" + rng.choice(_BRANDS) + rng.choice(_BRANDS) + rng.choice(_TRADES) + rng.choice(_SUFFIX)
        return f"SUP-N{self.next_id('')}", name

    def next_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}{self.seq:08d}"

    def emit(self, etype: str, domain: str, org_id: str, when: dt.datetime, amount: float | None = None,
             counterparty: tuple[str, str] | None = None, arrival: dt.datetime | None = None, **attributes) -> str:
        prefix = {"payment": "FK", "journal_entry": "PZ", "purchase_order": "PO", "contract_signed": "HT",
                  "contract_changed": "BG", "investment_approval": "TZ", "investment_disbursement": "ZC",
                  "decision": "JC", "regulation_issued": "ZD", "matter_submitted": "OA", "review_step": "SP",
                  "supplier_profile": "GYS", "employee_profile": "RY", "tender_bid": "TB",
                  "goods_transfer": "GQ", "legal_case": "AJ", "project_stage": "XM", "training_completed": "PX",
                  "commitment_signed": "CN"}[etype]
        event: dict[str, Any] = {
            "event_id": self.next_id(prefix + "-"),
            "source": _SOURCES[domain],
            "domain": domain,
            "type": etype,
            "occurred_at": when.isoformat(),
            "org_id": org_id,
        }
        if amount is not None:
            event["amount"] = amount
            event["currency"] = "CNY"
        if counterparty:
            event["counterparty_id"], event["counterparty_name"] = counterparty
        event["attributes"] = {k: v for k, v in attributes.items() if v is not None}
        self.events.append((self.arrival(domain, when) if arrival is None else arrival.timestamp(), event))
        return event["event_id"]

    def arrival(self, domain: str, when: dt.datetime) -> float:
        """When the source system's sync delivers an event to riskwatch."""
        t = when.timestamp()
        if domain == "finance":  # near real time, a little jitter
            return t + self.rng.uniform(0, 600)
        # Batch syncs deliver a day's (or a week's) events in business order.
        day_start = when.astimezone(CST).replace(hour=0, minute=0, second=0, microsecond=0)
        if domain == "procurement":  # nightly batch at 02:00
            return (day_start + dt.timedelta(days=1, hours=2)).timestamp() + (t - day_start.timestamp()) / 1e4
        if domain == "governance":  # nightly at 06:00
            return (day_start + dt.timedelta(days=1, hours=6)).timestamp() + (t - day_start.timestamp()) / 1e4
        week_start = day_start - dt.timedelta(days=day_start.weekday())  # investment: weekly, Monday 03:00
        return (week_start + dt.timedelta(days=7, hours=3)).timestamp() + (t - week_start.timestamp()) / 1e4

    def approver(self, org_id: str, amount: float) -> str:
        if amount <= DEPARTMENT_LIMIT.get(org_id, 500_000.0):
            return "department"
        return "company" if amount <= 5_000_000 else "group"

    def unique_amount(self, org_id: str, cp_id: str, lo: float, hi: float, log: bool = False) -> float:
        while True:
            amount = self.money_log(lo, round(math.log10(hi / lo))) if log else self.money(lo, hi)
            if (org_id, cp_id, amount) not in self.used_amounts:
                self.used_amounts.add((org_id, cp_id, amount))
                return amount

    def invoice(self) -> str:
        self.invoice_seq += 1
        return f"FP{self.invoice_seq:09d}"

    def payment(self, org_id, tz, when, amount, cp, contract_id=None, payee_type="company", approver=None,
                invoice_no=None) -> str:
        return self.emit("payment", "finance", org_id, when, amount, cp, payment_no=self.next_id("FKD"),
                         contract_id=contract_id, invoice_no=invoice_no or self.invoice(), payee_type=payee_type,
                         approver_level=approver or self.approver(org_id, amount))

    def contract(self, org_id, tz, when, amount, cp, category=None, review="passed") -> str:
        category = category or self.rng.choice(list(TENDER))
        method = "tender" if amount >= TENDER[category] else self.rng.choice(["inquiry", "competitive_negotiation", "single_source"])
        contract_id = self.next_id("HT")
        self.emit("contract_signed", "procurement", org_id, when, amount, cp, contract_id=contract_id,
                  category=category, method=method, legal_review=review)
        return contract_id

    def po_fits(self, key: tuple, t: float, amount: float) -> bool:
        """A clean non-tender order must keep every 30-day span of its key under the threshold."""
        history = self.po_history.get(key, [])
        near = sum(a for (u, a) in history if abs(u - t) < 31 * 86400)
        return near + amount < TENDER[key[2]] * 0.97

    # --- clean business ------------------------------------------------------------
    def clean_contract_with_payments(self) -> None:
        rng = self.rng
        org_id, _, _, tz = self.org()
        cp = self.supplier()
        amount = self.unique_amount(org_id, cp[0], 80_000, rng.choice([800_000, 8_000_000]), log=True)
        day = rng.randrange(self.days - 10)
        signed = self.business_time(tz, day)
        contract_id = self.contract(org_id, tz, signed, amount, cp)
        limit = amount  # payments stay within the original amount, whenever a change lands
        if rng.random() < 0.12:  # a change; anything above 5% carries an approval
            grow = rng.choice([1.03, 1.05, 1.10, 1.3])
            when = self.business_time(tz, min(self.days - 1, day + rng.randint(1, 20)))
            self.emit("contract_changed", "procurement", org_id, when, math.floor(amount * grow * 100) / 100, cp,
                      contract_id=contract_id, original_amount=amount,
                      approval_ref=self.next_id("BGSP") if grow > 1.05 else None)
        k = rng.randint(1, 4)
        shares = [rng.uniform(0.5, 1.0) for _ in range(k)]
        total_share = rng.uniform(0.6, 0.97)
        paid_day = day
        for s in shares:
            pay = round(limit * total_share * s / sum(shares), 2)
            paid_day = min(self.days - 1, paid_day + rng.randint(0, 12))
            when = self.business_time(tz, paid_day)
            if pay <= 0 or (org_id, cp[0], pay) in self.used_amounts:
                continue
            self.used_amounts.add((org_id, cp[0], pay))
            self.payment(org_id, tz, when, pay, cp, contract_id)

    def clean_small_payment(self) -> None:
        org_id, _, _, tz = self.org()
        if self.rng.random() < 0.15:
            cp = ("IND-" + str(self.rng.randrange(10**6)), self.person())
            amount = self.unique_amount(org_id, cp[0], 30, 30_000, log=True)
            self.payment(org_id, tz, self.business_time(tz), amount, cp, payee_type="individual")
        else:
            cp = self.supplier()
            amount = self.unique_amount(org_id, cp[0], 40, 40_000, log=True)
            self.payment(org_id, tz, self.business_time(tz), amount, cp)

    def clean_journal_entry(self) -> None:
        rng = self.rng
        org_id, _, _, tz = self.org()
        manual = rng.random() < 0.35
        if manual:
            amount = self.money_log(100, 4) if rng.random() < 0.97 else self.money_log(1_000_000, 1)
            when = self.business_time(tz)
        else:  # system postings run around the clock
            amount = self.money_log(200, 5)
            when = self.business_time(tz, hour_range=(0, 23))
        self.emit("journal_entry", "finance", org_id, when, amount, entry_no=self.next_id("PZH"), manual=manual,
                  account=rng.choice(["1002 银行存款", "2202 应付账款", "6602 管理费用", "1122 应收账款", "1601 固定资产"]),
                  posted_by=self.person())

    def clean_purchase_order(self) -> None:
        rng = self.rng
        org_id, _, _, tz = self.org()
        category = rng.choice(list(TENDER))
        if rng.random() < 0.08:
            amount = self.money(TENDER[category], TENDER[category] * 4)
            cp = self.supplier()
            self.emit("purchase_order", "procurement", org_id, self.business_time(tz), amount, cp,
                      po_no=self.next_id("CG"), category=category, method="tender")
            return
        for _ in range(20):
            cp = self.supplier()
            when = self.business_time(tz)
            amount = self.money(2_000, TENDER[category] * 0.3)
            key = (org_id, cp[0], category)
            if self.po_fits(key, when.timestamp(), amount):
                self.po_history.setdefault(key, []).append((when.timestamp(), amount))
                method = rng.choice(["inquiry", "inquiry", "competitive_negotiation", "single_source", "framework"])
                self.emit("purchase_order", "procurement", org_id, when, amount, cp, po_no=self.next_id("CG"),
                          category=category, method=method)
                return

    def clean_investment(self) -> None:
        rng = self.rng
        org_id, _, _, tz = self.org()
        overseas = org_id == "SUB12" or rng.random() < 0.05
        budget = self.money(1_000_000, 200_000_000)
        day = rng.randrange(self.days - 20)
        project = self.next_id("XM")
        self.emit("investment_approval", "investment", org_id, self.business_time(tz, day), budget,
                  project_id=project, decision_ref=self.next_id("DS"), overseas=overseas,
                  filing_ref=self.next_id("BA") if overseas else None, category=rng.choice(["固定资产", "股权投资", "技术改造"]))
        share = rng.uniform(0.3, 1.05)
        k = rng.randint(1, 6)
        for i in range(k):
            when = self.business_time(tz, min(self.days - 1, day + 1 + i * rng.randint(1, 12)))
            self.emit("investment_disbursement", "investment", org_id, when, round(budget * share / k, 2), project_id=project)

    def clean_governance(self) -> None:
        rng = self.rng
        org_id, _, _, tz = self.org()
        if rng.random() < 0.75:
            self.emit("decision", "governance", org_id, self.business_time(tz), decision_id=self.next_id("JCD"),
                      kind=rng.choice(["major_decision", "major_project", "large_fund", "appointment"]),
                      legal_review="passed", meeting=rng.choice(["党委会", "董事会", "总经理办公会"]))
        else:
            self.emit("regulation_issued", "governance", org_id, self.business_time(tz),
                      regulation_id=self.next_id("ZDH"), legal_review="passed")

    def regular_suppliers(self, per_org: int) -> None:
        """Suppliers each org pays every few days under a framework contract, about
        the same amount each time: the history the amount detector learns from.
        The contract is sized for 60 usual payments and renewed after 30 (at
        most 37.5 times the usual amount paid, so the planted payment of up to 20
        times still fits), so a stream over years does not pay past it; a
        quarter's stream (30 payments at most) never renews."""
        rng = self.rng
        for org_id, _, _, tz in ORGS:
            for _ in range(per_org):
                cp = self.new_supplier()
                usual = self.money_log(5_000, 2)
                every = rng.choice([3, 4, 5, 7])
                first = contract_id = self.contract(org_id, tz, self.business_time(tz, 0), round(usual * 60, 2), cp,
                                                    category="services")
                self.regulars.append((org_id, tz, cp, usual, contract_id, every))
                self.renewals[first] = [(0, first)]
                day = rng.randrange(every)
                paid = 0
                while day < self.days:
                    if paid == FRAMEWORK_RENEWED_AFTER:
                        contract_id = self.contract(org_id, tz, self.business_time(tz, day), round(usual * 60, 2), cp,
                                                    category="services")
                        self.renewals[first].append((day, contract_id))
                        paid = 0
                    amount = self.unique_amount(org_id, cp[0], usual * 0.8, usual * 1.25)
                    self.payment(org_id, tz, self.business_time(tz, day), amount, cp, contract_id)
                    paid += 1
                    day += every

    def contract_in_force(self, first: str, day: int) -> str:
        """The framework contract of a regular supplier in force on ``day``."""
        return [contract for since, contract in self.renewals[first] if since <= day][-1]

    # --- planted anomalies (no rule names them; the detectors should) -----------------
    def plant_anomalies(self, rounds: int) -> None:
        for _ in range(rounds):
            self.plant_amount_outlier()
        for _ in range(max(2, rounds // 2)):
            self.plant_payment_burst()
        months = sorted({(self.start + dt.timedelta(days=d)).astimezone(CST).strftime("%Y-%m") for d in range(self.days)})
        full = [m for m in months if sum(1 for d in range(self.days)
                                         if (self.start + dt.timedelta(days=d)).astimezone(CST).strftime("%Y-%m") == m) >= 28]
        # The same share of an org-month's journal at any density: 250 in 100,000 events.
        fabricated = max(250, round(250 * self.n / 100_000))
        for org, month in zip(self.rng.sample([o for o in ORGS if o[3] == CST], 2), self.rng.sample(full, 2)):
            self.plant_fabricated_entries(org, month, fabricated)

    def plant_amount_outlier(self) -> None:
        """A regular supplier paid many times its usual amount, within its contract."""
        rng = self.rng
        org_id, tz, cp, usual, contract_id, every = rng.choice(self.regulars)
        day = rng.randrange(max(8 * every + 2, 45), self.days - 1)
        amount = self.unique_amount(org_id, cp[0], usual * 8, usual * 20)
        ids = [self.payment(org_id, tz, self.business_time(tz, day), amount, cp, self.contract_in_force(contract_id, day))]
        self.record(101, "anomaly", ids, f"{amount / usual:.1f}x the usual {usual:,.0f} to {cp[0]}")

    def plant_payment_burst(self) -> None:
        """A supplier nobody paid before: a contract, then many payments within days."""
        rng = self.rng
        org_id, _, _, tz = self.org()
        cp = self.new_supplier()
        day = rng.randrange(40, self.days - 5)
        total = self.money_log(1_000_000, 1)
        contract_id = self.contract(org_id, tz, self.business_time(tz, day), total, cp)
        k = rng.randint(6, 9)
        ids = [self.payment(org_id, tz, self.business_time(tz, day + rng.randint(1, 3)),
                            self.unique_amount(org_id, cp[0], total * 0.06, total * 0.1), cp, contract_id)
               for _ in range(k)]
        self.record(102, "anomaly", ids, f"{k} payments to new supplier {cp[0]} within 3 days")

    def plant_fabricated_entries(self, org: tuple, month: str, count: int = 250) -> None:
        """A run of made-up round-number journal entries in one org-month."""
        rng = self.rng
        org_id, _, _, tz = org
        days = [d for d in range(self.days) if (self.start + dt.timedelta(days=d)).astimezone(CST).strftime("%Y-%m") == month
                and (self.start + dt.timedelta(days=d)).astimezone(tz).isoweekday() <= 5]
        ids = []
        for _ in range(count):
            amount = float(rng.choice([5, 6, 7, 8, 9]) * 10 ** rng.choice([4, 5]) * rng.choice([1, 1.05, 1.1]))
            ids.append(self.emit("journal_entry", "finance", org_id, self.business_time(tz, rng.choice(days)), round(amount, 2),
                                 entry_no=self.next_id("PZH"), manual=True, account="6602 管理费用", posted_by=self.person()))
        self.record(103, "anomaly", ids, f"{org_id} {month}: {count} round-number entries")

    # --- planted violations and near-misses --------------------------------------
    def record(self, scenario: int, kind: str, ids: list[str], note: str = "", rule: str | None = None) -> None:
        review = REVIEW_SCENARIOS.get(scenario) or MATTER_SCENARIOS.get(scenario)
        rule = (rule or SCENARIOS.get(scenario) or PARTY_SCENARIOS.get(scenario) or TRADE_SCENARIOS.get(scenario)
                or (review[0] if review else ANOMALIES[scenario]))
        self.truth.instances.append(Instance(scenario, rule, kind, ids, note))

    def malformed(self, count: int) -> list[bytes]:
        rng = self.rng
        kinds = [
            lambda e: orjson.dumps(e)[:-7],  # truncated
            lambda e: orjson.dumps({**e, "amount": -abs(e.get("amount") or 1)}),
            lambda e: orjson.dumps({k: v for k, v in e.items() if k != "org_id"}),
            lambda e: orjson.dumps({**e, "occurred_at": e["occurred_at"][:19]}),  # no offset
            lambda e: orjson.dumps({**e, "domain": "hr"}),
            lambda e: orjson.dumps([e]),
            lambda e: orjson.dumps({**e, "amount": "一百万"}),
        ]
        out = []
        for _ in range(count):
            _, sample = rng.choice(self.events)
            out.append(rng.choice(kinds)({**sample, "event_id": self.next_id("BAD-")}))
        self.truth.malformed = count
        return out


def generate(events: int = 100_000, seed: int = 20260601, start: dt.datetime = DEFAULT_START, days: int = 90,
             malformed: float = 0.001) -> GeneratedStream:
    """Generate about ``events`` lines (planted cases included) in arrival order."""
    b = _Builder(events, seed, start, days)
    b.regular_suppliers(per_org=max(3, min(25, events // 4000)))
    b.plant(rounds=max(2, min(12, events // 8000)))
    b.plant_anomalies(rounds=max(3, events // 8000))  # the same share of planted anomalies at any density
    # Master data, tender lots and their typologies (monitor.analyst.tenders), from a generator of their own.
    tenders = TenderPlants(b, seed, ORGS)
    tenders.plant(rounds=max(2, min(12, events // 8000)), staff_per_org=max(20, min(300, events // 2500)))
    tenders.clean_lots(max(20, events // 600))
    trades = TradePlants(b, seed, ORGS)  # trading, and goods that go round (monitor.analyst.trades)
    trades.plant(rounds=max(2, min(12, events // 8000)))
    trades.clean_trades(max(20, events // 1000))
    # staff trained and committed, legal cases, major projects, key posts (monitor.analyst.matters)
    matters = MatterPlants(b, seed, ORGS)
    matters.plant_staff(per_org=max(10, min(40, events // 2500)))
    matters.plant_cases(rounds=max(2, min(12, events // 8000)))
    matters.plant_projects(rounds=max(2, min(12, events // 8000)))
    matters.plant_key_posts(rounds=max(2, min(12, events // 8000)))
    bad = b.malformed(int(events * malformed))
    makers = [
        (b.clean_contract_with_payments, 0.07),
        (b.clean_small_payment, 0.17),
        (b.clean_journal_entry, 0.36),
        (b.clean_purchase_order, 0.22),
        (b.clean_investment, 0.006),
        (b.clean_governance, 0.02),
    ]
    funcs, weights = zip(*makers)
    rng = b.rng
    review_rounds = max(2, min(12, events // 8000))
    while len(b.events) + len(bad) + REVIEW_EVENTS_PER_ROUND * review_rounds < events:
        rng.choices(funcs, weights)[0]()
    ReviewPlants(b, seed).plant(review_rounds)  # last: the stream before it stays as it was, but for its length
    b.events.sort(key=lambda pair: pair[0])
    lines = [orjson.dumps(e) + b"\n" for _, e in b.events]
    # Malformed records arrive at random places in the stream.
    for raw in bad:
        lines.insert(rng.randrange(len(lines) + 1), raw + b"\n")
    return GeneratedStream(lines, b.truth, start, days)
