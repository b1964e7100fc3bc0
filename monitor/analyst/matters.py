"""The generator's matters that follow a process of their own: foreign legal
disputes and major projects (and, as they come, the staff on key posts).

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

It draws from a random generator of its own, so the rest of a seed's stream
stays as it was.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

__all__ = ["MATTER_SCENARIOS", "MatterPlants"]

MATTER_SCENARIOS = {32: ("RC-LAW-01", "warning"), 33: ("RC-LAW-01", "silent:response"),
                    34: ("RC-PRJ-01", "moved_on"), 35: ("RC-PRJ-01", "silent"), 36: ("RC-PRJ-01", "disbursed_early")}
STAGES = ("initiation", "feasibility", "decision", "contracting", "implementation", "acceptance")
FOREIGN_COURTS = [("DE", "Landgericht Hamburg"), ("US", "U.S. District Court, S.D.N.Y."), ("GB", "High Court of Justice"),
                  ("SG", "Singapore International Commercial Court"), ("FR", "Tribunal de commerce de Paris"),
                  ("AE", "DIFC Courts"), ("KZ", "Astana International Financial Centre Court")]
DOMESTIC_COURTS = ["临江市中级人民法院", "上海国际商事法庭", "北京市第四中级人民法院", "深圳国际仲裁院"]
OPPONENTS = ["Nordsee Logistik GmbH", "Atlantic Ore Partners LLC", "Thames Marine Insurance plc", "Pacific Ore Trading Pte. Ltd.",
             "Société Générale d'Ingénierie SA", "Gulf Petrochemical Services FZE", "Steppe Mining JSC"]
DOMESTIC_OPPONENTS = ["临江恒达建材有限公司", "江南远航船务有限公司", "华东矿业开发有限公司"]


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
                    reviewer_id=f"E{rng.randrange(2000, 2999)}", opinion="pass", opinion_no=self.b.next_id("FWCY"))
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
