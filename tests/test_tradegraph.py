"""The trade cycle a transfer closes (monitor.core.tradegraph) and fin_circular_trade."""

from __future__ import annotations

import pytest

from monitor.core.tradegraph import closed_cycle, describe_cycle
from tests.conftest import make_event, score_all


@pytest.mark.parametrize("transfers, anchor, expected", [
    # A→B, B→C, C→A in time order: closed by the last
    ([(1, "A", "B", "t1"), (2, "B", "C", "t2"), (3, "C", "A", "t3")], 2, (["A", "B", "C"], ["t1", "t2", "t3"])),
    # a buy-back: two parties
    ([(1, "A", "B", "t1"), (2, "B", "A", "t2")], 1, (["A", "B"], ["t1", "t2"])),
    # the shortest way round in time: the detour through D arrives later than the direct hop
    ([(1, "A", "B", "t1"), (2, "B", "D", "t2"), (3, "B", "C", "t3"), (4, "D", "C", "t4"), (5, "C", "A", "t5")], 4,
     (["A", "B", "C"], ["t1", "t3", "t5"])),
    # a transfer later than the anchor does not count
    ([(1, "A", "B", "t1"), (2, "C", "A", "t2"), (3, "B", "C", "t3")], 1, None),
    # hops out of time order are no circle
    ([(1, "C", "A", "t1"), (2, "B", "C", "t2"), (3, "A", "B", "t3")], 2, None),
    # empty or self transfers are skipped
    ([(1, "A", "", "t1"), (2, "A", "A", "t2"), (3, "B", "A", "t3")], 2, None),
])
def test_closed_cycle(transfers, anchor, expected):
    assert closed_cycle(transfers, anchor) == expected


def test_describe_cycle():
    assert describe_cycle(["SUB06", "CUS-1", "CUS-2"]) == "SUB06 → CUS-1 → CUS-2 → SUB06"


def transfer(i, seller, buyer, goods="电解铜", day=0):
    return make_event(i, type="goods_transfer", amount=10_000_000 + i, occurred_at=f"2026-03-{2 + day:02d}T10:00:00+08:00",
                      attributes={"seller_id": seller, "buyer_id": buyer, "goods": goods})


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
def test_the_circle_is_found_whatever_order_its_transfers_arrive_in(default_pack, order):
    events = [transfer(1, "ORG1", "C1", day=0), transfer(2, "C1", "C2", day=2),
              transfer(3, "C9", "C1", goods="铝锭", day=3), transfer(4, "C2", "ORG1", day=5)]
    findings, _ = score_all(default_pack, [events[i] for i in order], batch_size=1)
    circles = {(tuple(f.event_ids), f.values["cycle"], f.values["cycle_path"]) for f in findings
               if f.rule_id == "fin_circular_trade"}
    assert circles == {(("e1", "e2", "e4"), 3.0, "ORG1 → C1 → C2 → ORG1")}
