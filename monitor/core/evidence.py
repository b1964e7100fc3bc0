"""The events behind each alert, kept for its ticket. Pure.

An alert lists its event ids; a compliance manager needs the events. Events
that can still become evidence later are those a stateful rule holds (a window
or a running total): ``Evidence`` keeps the most recent of them, bounded, as
the JSON they arrived as. When an alert is created or changed,
``Evidence.collect`` returns the events it has not yet handed over — from the
batch, or from the cache — as (dedup key, event) pairs for the ticket store.

>>> from monitor.core.event import decode_lines
>>> lines = [b'{"event_id":"e%d","source":"erp","domain":"finance","type":"payment",'
...          b'"occurred_at":"2026-03-02T10:00:00+08:00","org_id":"ORG1"}' % i for i in (1, 2)]
>>> (e1, e2), _ = decode_lines(lines)
>>> ev = Evidence(max_events=10)
>>> ev.remember([e1], lines[:1])
>>> from types import SimpleNamespace as A
>>> [(k, e["event_id"]) for k, e in ev.collect([A(dedup_key="r|1", event_ids=["e1", "e2"], status="live")], [e2])]
[('r|1', 'e1'), ('r|1', 'e2')]
>>> ev.collect([A(dedup_key="r|1", event_ids=["e1", "e2"], status="live")], [])   # already handed over
[]
"""

from __future__ import annotations

from itertools import islice
from operator import attrgetter
from typing import Any, Iterable

import msgspec

from monitor.core.event import Event, decode_one

__all__ = ["Evidence"]

_event_id = attrgetter("event_id")


class Evidence:
    """The last ``max_events`` held events, oldest first seen dropped first,
    and what each alert has been given.

    Each held event is kept as the JSON it arrived as, and decoded again only
    when an alert asks for it: a cache of event objects kept tens of thousands
    of small objects alive for a while and freed them cold, which cost a
    scorer 10% of its time.
    """

    def __init__(self, max_events: int = 60_000):
        self.max_events = max_events
        self._recent: dict[str, bytes] = {}  # event id -> its JSON
        self._given: dict[str, set[str]] = {}

    def remember(self, events: Iterable[Event], raws: Iterable[bytes]) -> None:
        """Keep these events (and ``raws``, the JSON each was decoded from)."""
        recent = self._recent
        # One C call for the batch. An event seen again (a redelivery) keeps
        # its place: it is the same event, and no younger than it was.
        recent.update(zip(map(_event_id, events), raws))
        excess = len(recent) - self.max_events
        if excess > 0:
            for event_id in list(islice(recent, excess)):
                del recent[event_id]

    def collect(self, alerts: Iterable[Any], batch_events: list[Event]) -> list[tuple[str, dict]]:
        """(dedup key, event as plain data) for every event of these live alerts not yet given."""
        out: list[tuple[str, dict]] = []
        by_id: dict[str, Event] | None = None
        for alert in alerts:
            if alert.status != "live":
                continue
            given = self._given.setdefault(alert.dedup_key, set())
            for event_id in alert.event_ids:
                if event_id in given:
                    continue
                if by_id is None:
                    by_id = {e.event_id: e for e in batch_events}
                event = by_id.get(event_id)
                if event is None:
                    raw = self._held_json(alert, event_id)
                    event = None if raw is None else decode_one(raw)
                if isinstance(event, Event):
                    given.add(event_id)
                    out.append((alert.dedup_key, msgspec.to_builtins(event)))
        return out

    def _held_json(self, alert: Any, event_id: str) -> bytes | None:
        """The JSON of a held event of ``alert``'s, if it is still kept."""
        return self._recent.get(event_id)
