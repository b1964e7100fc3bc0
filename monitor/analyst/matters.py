"""The generator's matters that follow a process of their own: foreign legal
disputes (and, as they come, major projects and the staff on key posts).

Scenario 32 plants a major case abroad — a group company defendant, a claim of
ten million CNY or more — filed, served and answered on day 14: the early
warning (``RC-LAW-01`` ``warning``) is what must be found, and nothing else.
Scenario 33 plants such a case served and never answered: warned of too
(scenario 32), and its silence (``silent:response``) is a second ticket. The near misses, which must stay
quiet: a domestic case of any size, a foreign claim under the threshold, a
foreign case where we are plaintiff (none of them answered), and the answer
on day 14 of scenario 32's case.

It draws from a random generator of its own, so the rest of a seed's stream
stays as it was.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

__all__ = ["MATTER_SCENARIOS", "MatterPlants"]

MATTER_SCENARIOS = {32: ("RC-LAW-01", "warning"), 33: ("RC-LAW-01", "silent:response")}
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
