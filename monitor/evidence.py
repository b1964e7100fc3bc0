"""The events behind each alert, kept for its ticket. Pure.

An alert lists its event ids; a compliance manager needs the events. Events
that can still become evidence later are those a stateful rule holds (a window
or a running total): an ``EvidenceCache`` keeps the most recent of them,
bounded. When an alert is created or changed, ``Evidence.collect`` returns the
events it has not yet handed over — from the batch, or from the cache —
as (dedup key, event) pairs for the ticket store.

>>> from monitor.event import decode_lines
>>> (e1, e2), _ = decode_lines([b'{"event_id":"e%d","source":"erp","domain":"finance","type":"payment",'
...     b'"occurred_at":"2026-03-02T10:00:00+08:00","org_id":"ORG1"}' % i for i in (1, 2)])
>>> ev = Evidence(max_events=10)
>>> ev.remember([e1])
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

from monitor.event import Event

__all__ = ["Evidence"]

_event_id = attrgetter("event_id")


class Evidence:
    """The last ``max_events`` held events, oldest first seen dropped first,
    and what each alert has been given."""

    def __init__(self, max_events: int = 60_000):
        self.max_events = max_events
        self._recent: dict[str, Event] = {}
        self._given: dict[str, set[str]] = {}

    def remember(self, events: Iterable[Event]) -> None:
        recent = self._recent
        # One C call for the batch. An event seen again (a redelivery) keeps
        # its place: it is the same event, and no younger than it was.
        events = list(events)
        recent.update(zip(map(_event_id, events), events))
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
                event = by_id.get(event_id) or self._recent.get(event_id)
                if event is not None:
                    given.add(event_id)
                    out.append((alert.dedup_key, msgspec.to_builtins(event)))
        return out
