"""The generator's trading business: goods bought and sold on, and circles among them.

Trading orgs buy a commodity from a supplier and sell it on to a customer
days later (two ``goods_transfer`` events: the title passes supplier → org →
customer). Into that, scenario 31 plants circular trade (融资性贸易, 空转走单):
goods sold to one partner, sold on to a second, and bought back from it within
days. Its near miss is fungible trading that only looks circular: the org
bought from a partner, who had bought from another, to whom the org sold later
(the hops run backwards in time, so no goods went round).

It draws from a random generator of its own, so the rest of a seed's stream
stays as it was.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from monitor.analyst.fictional import BRANDS, CITIES, SUFFIXES

__all__ = ["GOODS", "TRADE_SCENARIOS", "TradePlants"]

TRADE_SCENARIOS = {31: "fin_circular_trade"}
GOODS = ["电解铜", "铝锭", "螺纹钢", "热轧卷板", "动力煤", "PTA", "聚乙烯", "大豆", "锌锭", "镍板"]


class TradePlants:
    """Clean trading and planted circles, emitted through the generator's builder."""

    def __init__(self, builder: Any, seed: int, orgs: list[tuple]):  # the generator's builder: emit, record, ids
        self.b = builder
        self.orgs = orgs
        self.rng = random.Random(seed * 7877 + 31)
        self.serial = 0
        self.customers: list[tuple[str, str]] = []

    def customer(self) -> tuple[str, str]:
        """A buyer of the org's goods (a pool of its own, never a supplier)."""
        if len(self.customers) < 400 or self.rng.random() < 0.05:
            self.serial += 1
            name = f"{self.rng.choice(CITIES)}{self.rng.choice(BRANDS)}{self.rng.choice(BRANDS)}贸易{self.rng.choice(SUFFIXES)}"
            self.customers.append((f"CUS-{self.serial:05d}", name))
            return self.customers[-1]
        return self.rng.choice(self.customers)

    def org(self) -> tuple:
        return self.rng.choices(self.orgs, [w for _, _, w, _ in self.orgs])[0]

    def transfer(self, org: tuple, day: float, seller: tuple[str, str], buyer: tuple[str, str], goods: str,
                 amount: float) -> str:
        """Title to ``goods`` passes from seller to buyer; the org records it (its own side, or the chain's)."""
        org_id, _, _, tz = org
        when = (self.b.start + dt.timedelta(days=day)).astimezone(tz).replace(hour=11, minute=0, second=0)
        other = buyer if seller[0] == org_id else seller if buyer[0] == org_id else None
        return self.b.emit("goods_transfer", "procurement", org_id, when, round(amount, 2), other,
                           seller_id=seller[0], buyer_id=buyer[0], goods=goods, contract_id=self.b.next_id("GX"))

    def clean_trades(self, count: int) -> None:
        rng = self.rng
        for _ in range(count):
            org = self.org()
            me = (org[0], org[1])
            day = rng.randrange(self.b.days - 10)
            goods, amount = rng.choice(GOODS), 10 ** rng.uniform(6, 7.5)
            self.transfer(org, day, rng.choice(self.b.suppliers), me, goods, amount)
            self.transfer(org, day + rng.randint(1, 9), me, self.customer(), goods, amount * rng.uniform(1.002, 1.03))

    def plant(self, rounds: int) -> None:
        rng = self.rng
        for _ in range(rounds):
            org = self.org()
            me = (org[0], org[1])
            first, second = self.customer(), self.customer()
            day = rng.randrange(2, self.b.days - 12)
            goods, amount = rng.choice(GOODS), 10 ** rng.uniform(7, 8)
            ids = [self.transfer(org, day, me, first, goods, amount),
                   self.transfer(org, day + rng.randint(1, 4), first, second, goods, amount * 1.004),
                   self.transfer(org, day + rng.randint(5, 9), second, me, goods, amount * 1.008)]
            self.b.record(31, "violation", ids, f"{goods} {org[0]} → {first[0]} → {second[0]} → {org[0]}")
            upstream, partner = self.customer(), self.customer()
            day = rng.randrange(2, self.b.days - 12)
            ids = [self.transfer(org, day, partner, me, goods, amount),
                   self.transfer(org, day + 2, upstream, partner, goods, amount * 0.99),
                   self.transfer(org, day + 6, me, upstream, goods, amount * 1.01)]
            self.b.record(31, "near_miss", ids, f"{goods}: the same three parties, hops backwards in time")
