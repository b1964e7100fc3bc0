"""The generator's matters that follow a process of their own: foreign legal
disputes, major projects and the staff on key posts.

Scenario 32 plants a major case abroad — a group company defendant, a claim of
ten million CNY or more — filed, served and answered on day 14: the early
warning (``RC-LAW-01`` ``warning``) is what must be found, and nothing else.
Scenario 33 plants such a case served and never answered: warned of too
(scenario 32), and its silence (``silent:response``) is a second ticket. The near misses, which must stay
quiet: a domestic case of any size, a foreign claim under the threshold, a
foreign case where we are plaintiff (none of them answered), and the answer
on day 14 of scenario 32's case.

Major projects (``RC-PRJ-01``: 50,000,000 CNY or more, or overseas) go
through their stages with the legal compliance officer taking part in each.
Scenario 34 plants a project that leaves a stage no one from legal took part
in (``moved_on``); 35 a stage left without a participation for more than ten
days (``silent``); 36 money disbursed before a participation covered
contracting (``disbursed_early``). The near misses: a project whose
participations come on day 9 of a stage and five minutes before it moves on,
and a 30,000,000 CNY domestic project with no participation at all.

Each org's staff who review, draft and take part (``plant_staff``) had a
compliance training in the year before the stream and signed the year's
commitment. Scenario 37 plants a finance manager, committed but last trained
more than a year before, approving payments of a million or more (two in a
month: one warning listing both); 38 an investment manager, trained but
without this year's commitment, signing a contract. The near misses: a
manager trained 364 days before approving, an untrained manager approving
300,000 CNY, an untrained clerk approving 2,100,000 CNY.

It draws from a random generator of its own, so the rest of a seed's stream
stays as it was.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from monitor.analyst.fictional import BRANDS

__all__ = ["MATTER_SCENARIOS", "MatterPlants"]

MATTER_SCENARIOS = {32: ("RC-LAW-01", "warning"), 33: ("RC-LAW-01", "silent:response"),
                    34: ("RC-PRJ-01", "moved_on"), 35: ("RC-PRJ-01", "silent"), 36: ("RC-PRJ-01", "disbursed_early"),
                    37: ("RC-KEY-01", "untrained"), 38: ("RC-KEY-01", "uncommitted")}
STAGES = ("initiation", "feasibility", "decision", "contracting", "implementation", "acceptance")
FOREIGN_COURTS = [("DE", "Landgericht Hamburg"), ("US", "U.S. District Court, S.D.N.Y."), ("GB", "High Court of Justice"),
                  ("SG", "Singapore International Commercial Court"), ("FR", "Tribunal de commerce de Paris"),
                  ("AE", "DIFC Courts"), ("KZ", "Astana International Financial Centre Court")]
DOMESTIC_COURTS = ["临江市中级人民法院", "上海国际商事法庭", "北京市第四中级人民法院", "深圳国际仲裁院"]
OPPONENTS = ["Nordsee Logistik GmbH", "Atlantic Ore Partners LLC", "Thames Marine Insurance plc", "Pacific Ore Trading Pte. Ltd.",
             "Société Générale d'Ingénierie SA", "Gulf Petrochemical Services FZE", "Steppe Mining JSC"]
DOMESTIC_OPPONENTS = ["临江恒达建材有限公司", "江南远航船务有限公司", "华东矿业开发有限公司"]
COURSES = ["《中央企业合规管理办法》解读", "反商业贿赂与廉洁从业", "招标投标合规要点", "境外经营合规与出口管制",
           "合同管理与法律风险防范"]


class MatterPlants:
    """Legal cases, planted through the generator's builder (emit, record, ids)."""

    def __init__(self, builder: Any, seed: int, orgs: list[tuple], case_min: float = 10_000_000.0):
        self.b = builder
        self.orgs = orgs
        self.rng = random.Random(seed * 7919 + 32)
        self.case_min = case_min

    def org(self) -> tuple:
        return self.rng.choices(self.orgs, [w for _, _, w, _ in self.orgs])[0]

    def _case_step(self, org: tuple, case_id: str, day: float, hour: int, status: str, claim: float,
                   jurisdiction: str, role: str, court: str, opponent: str) -> str:
        org_id, _, _, tz = org
        when = (self.b.start + dt.timedelta(days=day)).astimezone(tz).replace(hour=hour, minute=30, second=0)
        party = (f"OPP-{(OPPONENTS + DOMESTIC_OPPONENTS).index(opponent) + 1:03d}", opponent)
        return self.b.emit("legal_case", "governance", org_id, when, round(claim, 2), party,
                           case_id=case_id, jurisdiction=jurisdiction, role=role, status=status, court=court)

    def _case(self, statuses: list[tuple[str, float]], claim: float, foreign: bool = True,
              role: str = "defendant") -> list[str]:
        """One case: its steps (status, days after filing); the event ids in order."""
        org, rng = self.org(), self.rng
        case_id = self.b.next_id("AJ")
        jurisdiction, court = rng.choice(FOREIGN_COURTS) if foreign else ("CN", rng.choice(DOMESTIC_COURTS))
        opponent = rng.choice(OPPONENTS) if foreign else rng.choice(DOMESTIC_OPPONENTS)
        day = rng.randrange(2, max(3, self.b.days - 40))
        return [self._case_step(org, case_id, day + after, 10 + i, status, claim, jurisdiction, role, court, opponent)
                for i, (status, after) in enumerate(statuses)]

    def plant_cases(self, rounds: int) -> None:
        rng = self.rng
        major = lambda: round(self.case_min * rng.uniform(1.0, 30.0), -3)  # noqa: E731
        for _ in range(rounds):
            filed, served, answered = self._case([("filed", 0), ("served", 4), ("responded", 4 + 14)], major())
            self.b.record(32, "violation", [filed], "major case abroad: warned of at its filing")
            self.b.record(33, "near_miss", [served, answered], "answered on day 14 of being served")
            filed, served, hearing = self._case([("filed", 0), ("served", 3), ("hearing", 30)], major())
            self.b.record(32, "violation", [filed], "major case abroad: warned of at its filing")
            self.b.record(33, "violation", [served], "served and never answered")
            never = [("served", 0), ("hearing", 25)]
            self.b.record(32, "near_miss", self._case(never, major() * 5, foreign=False), "a domestic case")
            self.b.record(32, "near_miss", self._case(never, round(self.case_min * rng.uniform(0.2, 0.95), -3)),
                          "a foreign claim under the threshold")
            self.b.record(32, "near_miss", self._case(never, major(), role="plaintiff"), "a foreign case as plaintiff")

    # --- major projects -----------------------------------------------------------------
    def _project(self, plan: list[tuple[str, float, float | None]], total: float, overseas: bool = False,
                 post: str = "legal_compliance_officer") -> dict[str, str]:
        """One project: per stage (name, day reached, day of the legal participation or None),
        counted from a start day; an approval at its decision. Event ids by what they are
        (``stage:<name>``, ``took_part:<name>``, ``approval``)."""
        org, rng = self.org(), self.rng
        org_id, _, _, tz = org
        project = self.b.next_id("XMP")
        start = rng.randrange(2, max(3, self.b.days - 50))
        at = lambda day: (self.b.start + dt.timedelta(days=start + day)).astimezone(tz)  # noqa: E731
        ids: dict[str, str] = {}
        for stage, reached, took_part in plan:
            ids[f"stage:{stage}"] = self.b.emit("project_stage", "investment", org_id, at(reached), total, None,
                                                project_id=project, stage=stage, overseas=overseas)
            if stage == "decision":
                filing = {"filing_ref": self.b.next_id("BA")} if overseas else {}
                ids["approval"] = self.b.emit("investment_approval", "investment", org_id, at(reached + 0.1), total,
                                              None, project_id=project, decision_ref=self.b.next_id("DS"),
                                              overseas=overseas, **filing)
            if took_part is not None:
                ids[f"took_part:{stage}"] = self.b.emit(
                    "review_step", "governance", org_id, at(took_part), None, None, matter_id=project,
                    matter_kind="project", step="legal_participation", stage=stage, reviewer_post=post,
                    reviewer_id=self.b.staff_member(org_id, rng), opinion="pass", opinion_no=self.b.next_id("FWCY"))
        ids["project"] = project
        ids["org"] = org_id
        return ids

    def _disburse(self, ids: dict[str, str], day_from_stage: tuple[str, float], amount: float) -> str:
        """A disbursement ``day`` days after the project reached a stage."""
        stage, after = day_from_stage
        reached = next(e for _, e in self.b.events if e["event_id"] == ids[f"stage:{stage}"])
        when = dt.datetime.fromisoformat(reached["occurred_at"]) + dt.timedelta(days=after)
        return self.b.emit("investment_disbursement", "investment", ids["org"], when, round(amount, 2), None,
                           project_id=ids["project"])

    def plant_projects(self, rounds: int) -> None:
        rng = self.rng
        minute = 1 / 1440
        for _ in range(rounds):
            total = round(rng.uniform(60e6, 600e6), -4)
            # every stage covered: on day 9 of initiation, five minutes before feasibility moves on
            clean = self._project([("initiation", 0, 9), ("feasibility", 10, 17 - 5 * minute), ("decision", 17, 19),
                                   ("contracting", 24, 25), ("implementation", 31, 33)], total)
            self._disburse(clean, ("contracting", 2), total * 0.2)
            self.b.record(35, "near_miss", [clean["stage:initiation"], clean["took_part:initiation"]],
                          "a participation on day 9 of the stage")
            self.b.record(34, "near_miss", [clean["took_part:feasibility"], clean["stage:decision"]],
                          "a participation five minutes before the project moved on")
            # scenario 34: feasibility left for decision with no one from legal
            moved = self._project([("initiation", 0, 2), ("feasibility", 6, None), ("decision", 13, 14)], total,
                                  overseas=rng.random() < 0.3)
            self.b.record(34, "violation", [moved["stage:feasibility"], moved["stage:decision"]],
                          "feasibility left with no legal participation")
            # scenario 35: an overseas project of any size, silent in its decision stage for three weeks
            small_abroad = round(rng.uniform(3e6, 40e6), -4)
            silent = self._project([("initiation", 0, 1), ("feasibility", 5, 6), ("decision", 10, None),
                                    ("contracting", 31, 32)], small_abroad, overseas=True)
            self.b.record(35, "violation", [silent["stage:decision"]], "no legal participation within ten days")
            # scenario 36: money out two days into contracting, the participation two days later
            early = self._project([("initiation", 0, 1), ("feasibility", 4, 5), ("decision", 8, 9),
                                   ("contracting", 12, 16)], total)
            paid = self._disburse(early, ("contracting", 2), total * 0.1)
            self.b.record(36, "violation", [paid], "disbursed before contracting was covered")
            # a 30,000,000 CNY domestic project: not watched, no participation at all
            small = self._project([("initiation", 0, None), ("feasibility", 12, None), ("decision", 26, None)],
                                  30_000_000.0)
            self.b.record(34, "near_miss", [small["stage:initiation"], small["stage:feasibility"]],
                          "a 30,000,000 CNY domestic project, not watched")

    # --- staff on key posts ---------------------------------------------------------------
    def _at(self, org: tuple, day: float, hour: int = 10) -> dt.datetime:
        return (self.b.start + dt.timedelta(days=day)).astimezone(org[3]).replace(hour=hour, minute=15, second=0)

    def _trained(self, org: tuple, employee: str, day: float) -> str:
        return self.b.emit("training_completed", "governance", org[0], self._at(org, day, 14), None, None,
                           employee_id=employee, course=self.rng.choice(COURSES), course_kind="compliance")

    def _committed(self, org: tuple, employee: str, year: int) -> str:
        day = (dt.datetime(year, 1, 5, tzinfo=org[3]) - self.b.start).days + self.rng.randrange(0, 40)
        return self.b.emit("commitment_signed", "governance", org[0], self._at(org, day, 9), None, None,
                           employee_id=employee, year=year)

    def plant_staff(self, per_org: int) -> None:
        """Per org, the staff who review, draft and take part: each trained in the year before the
        stream (course_kind compliance) and committed for the stream's year."""
        year = self.b.start.year
        for org in self.orgs:
            staff = [f"{org[0]}-E{i:04d}" for i in range(1, per_org + 1)]
            for employee in staff:
                self._trained(org, employee, -self.rng.randrange(20, 300))
                self._committed(org, employee, year)
            self.b.staff[org[0]] = staff

    def _contract(self, org: tuple, day: float, amount: float, signer: str, post: str) -> tuple[str, str, tuple]:
        """A contract with a supplier of its own (new to the detectors), signed by ``signer`` on ``post``."""
        supplier = (self.b.next_id("SUP-K"), f"临江{self.rng.choice(BRANDS)}{self.rng.choice(BRANDS)}科技有限公司")
        contract_id = self.b.next_id("HT")
        eid = self.b.emit("contract_signed", "procurement", org[0], self._at(org, day), round(amount, 2), supplier,
                          contract_id=contract_id, category="services", method="tender", legal_review="passed",
                          signer_id=signer, signer_post=post)
        return eid, contract_id, supplier

    def _paid(self, org: tuple, day: float, amount: float, supplier: tuple, contract_id: str, approver: str,
              post: str) -> str:
        when = self._at(org, day, 15)
        return self.b.emit("payment", "finance", org[0], when, round(amount, 2), supplier,
                           arrival=when + dt.timedelta(minutes=5),  # not the builder's random arrival: the stream stays
                           payment_no=self.b.next_id("FKD"), contract_id=contract_id,
                           invoice_no=self.b.next_id("FP"), payee_type="company",
                           approver_level="company" if amount <= 5_000_000 else "group",
                           approver_id=approver, approver_post=post)

    def plant_key_posts(self, rounds: int) -> None:
        rng, year = self.rng, self.b.start.year
        for _ in range(rounds):
            org = self.org()
            day = rng.randrange(3, self.b.days - 12)
            signer = self.b.staff_member(org[0], rng)
            # 37: committed, last trained 400 days before: two approvals in a month, one warning
            manager = self.b.next_id("FM")
            self._trained(org, manager, day - 400)
            self._committed(org, manager, year)
            _, contract_id, supplier = self._contract(org, day, 9_000_000, signer, "procurement_manager")
            first = self._paid(org, day + 1, rng.uniform(1.2e6, 2.5e6), supplier, contract_id, manager, "finance_manager")
            second = self._paid(org, day + 3, rng.uniform(1.2e6, 2.5e6), supplier, contract_id, manager, "finance_manager")
            self.b.record(37, "violation", [first, second], "approved with no compliance training in 365 days")
            # near misses on the same contract: trained 364 days before; an untrained manager under the
            # threshold; an untrained clerk over it
            trained = self.b.next_id("FM")
            self._trained(org, trained, day + 5 - 364)
            self._committed(org, trained, year)
            near = self._paid(org, day + 5, 1_200_000, supplier, contract_id, trained, "finance_manager")
            self.b.record(37, "near_miss", [near], "trained 364 days before approving")
            untrained = self.b.next_id("FM")
            near = self._paid(org, day + 6, 300_000, supplier, contract_id, untrained, "finance_manager")
            self.b.record(37, "near_miss", [near], "an untrained manager approving 300,000")
            clerk = self.b.next_id("FC")
            near = self._paid(org, day + 7, 2_100_000, supplier, contract_id, clerk, "finance_clerk")
            self.b.record(37, "near_miss", [near], "an untrained clerk approving 2,100,000")
            # 38: trained, but last year's commitment only: signs a contract
            investor = self.b.next_id("IM")
            self._trained(org, investor, day - 100)
            self._committed(org, investor, year - 1)
            signed, _, _ = self._contract(org, day + 2, 2_000_000, investor, "investment_manager")
            self.b.record(38, "violation", [signed], f"no {year} compliance commitment")
