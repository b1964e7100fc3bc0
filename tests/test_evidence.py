from types import SimpleNamespace

from monitor.event import decode_lines
from monitor.evidence import Evidence


def _events(*ids):
    events, _ = decode_lines([b'{"event_id":"%s","source":"erp","domain":"finance","type":"payment",'
                              b'"occurred_at":"2026-03-02T10:00:00+08:00","org_id":"ORG1"}' % i.encode() for i in ids])
    return events


def _alert(*ids):
    return SimpleNamespace(dedup_key="r|1", event_ids=list(ids), status="live")


def test_the_oldest_held_events_are_dropped_beyond_the_bound():
    evidence = Evidence(max_events=3)
    evidence.remember(_events("e1", "e2"))
    evidence.remember(_events("e3", "e4", "e5"))
    given = evidence.collect([_alert("e1", "e2", "e3", "e4", "e5")], [])
    assert [e["event_id"] for _, e in given] == ["e3", "e4", "e5"]


def test_a_redelivered_event_is_kept_once():
    evidence = Evidence(max_events=2)
    evidence.remember(_events("e1", "e2"))
    evidence.remember(_events("e1"))
    evidence.remember(_events("e3"))
    given = evidence.collect([_alert("e1", "e2", "e3")], [])
    assert [e["event_id"] for _, e in given] == ["e2", "e3"]
