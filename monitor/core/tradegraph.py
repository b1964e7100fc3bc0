"""Goods that go round: the trade cycle a transfer closes (融资性贸易, 空转走单). Pure.

A transfer of goods from ``seller`` to ``buyer`` at business time ``t`` closes
a cycle when the same goods reached the seller from the buyer before it, hop
after hop in time order: A→B on day 1, B→C on day 3, and C→A on day 5 closes
A→B→C→A. C→A on day 1, B→C on day 2 and A→B on day 3 do not: each hop
came before the goods could have reached its seller, and a chain is a circle
only when it runs forward in time.

``closed_cycle`` finds the cycle with one pass over the window's transfers in
time order (earliest arrival: the first time the goods can have reached each
party from the buyer), so a window of n transfers costs O(n), however the
parties connect. A general graph library earns no place here: what matters is
the time order of the hops, which its cycle searches do not know.

>>> transfers = [(1.0, "A", "B", "t1"), (3.0, "B", "C", "t2"), (5.0, "C", "A", "t3")]
>>> closed_cycle(transfers, 2)
(['A', 'B', 'C'], ['t1', 't2', 't3'])
>>> closed_cycle([(1.0, "C", "A", "t1"), (2.0, "B", "C", "t2"), (3.0, "A", "B", "t3")], 2) is None
True
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["CYCLE_FIELDS", "closed_cycle", "describe_cycle"]

CYCLE_FIELDS = ("attributes.buyer_id", "attributes.seller_id")  # a transfer's edge, as a window keeps it


def closed_cycle(transfers: Sequence[tuple[float, str, str, str]], anchor: int) -> tuple[list[str], list[str]] | None:
    """The cycle that transfer ``anchor`` closes among ``transfers``, sorted by time:
    ``(parties in order, starting with the anchor's buyer; the transfers' ids,
    the anchor's last)``, or None. Transfers later than the anchor are ignored."""
    t_anchor, seller, buyer, anchor_id = transfers[anchor]
    if not seller or not buyer or seller == buyer:
        return None
    arrival: dict[str, float] = {buyer: float("-inf")}
    via: dict[str, int] = {}  # party -> the transfer that first brought the goods there
    for i, (t, a, b, _id) in enumerate(transfers):
        if t > t_anchor:
            break
        if i == anchor or not a or not b or a == b:
            continue
        if a in arrival and arrival[a] <= t and t < arrival.get(b, float("inf")) and b != buyer:
            arrival[b], via[b] = t, i
    if seller not in arrival:
        return None
    parties, ids, at = [seller], [anchor_id], seller
    while at != buyer:
        i = via[at]
        ids.append(transfers[i][3])
        at = transfers[i][1]
        parties.append(at)
    parties.reverse()
    ids.reverse()
    return parties, ids


def describe_cycle(parties: list[str]) -> str:
    """``A → B → C → A``"""
    return " → ".join([*parties, parties[0]])
