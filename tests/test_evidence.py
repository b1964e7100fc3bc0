from types import SimpleNamespace

import msgspec

from monitor.core.event import decode_lines
from monitor.core.evidence import Evidence


def _events(*ids):
    """Events and the JSON they came from."""
    raws: list[bytes] = []
    events, _ = decode_lines([b'{"event_id":"%s","source":"erp","domain":"finance","type":"payment",'
                              b'"occurred_at":"2026-03-02T10:00:00+08:00","org_id":"ORG1"}' % i.encode() for i in ids],
                             raws=raws)
    return events, raws


def _alert(*ids):
    return SimpleNamespace(dedup_key="r|1", event_ids=list(ids), status="live")


def test_the_oldest_held_events_are_dropped_beyond_the_bound():
    evidence = Evidence(max_events=3)
    evidence.remember(*_events("e1", "e2"))
    evidence.remember(*_events("e3", "e4", "e5"))
    given = evidence.collect([_alert("e1", "e2", "e3", "e4", "e5")], [])
    assert [e["event_id"] for _, e in given] == ["e3", "e4", "e5"]


def test_a_redelivered_event_is_kept_once():
    evidence = Evidence(max_events=2)
    evidence.remember(*_events("e1", "e2"))
    evidence.remember(*_events("e1"))
    evidence.remember(*_events("e3"))
    given = evidence.collect([_alert("e1", "e2", "e3")], [])
    assert [e["event_id"] for _, e in given] == ["e2", "e3"]


def test_a_cached_event_is_handed_over_as_it_was_decoded():
    evidence = Evidence()
    events, raws = _events("e1")
    evidence.remember(events, raws)
    assert evidence.collect([_alert("e1")], []) == [("r|1", msgspec.to_builtins(events[0]))]
