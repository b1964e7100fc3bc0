"""Alerts: the contract-3 fields, merging the same finding, stable ids."""

from __future__ import annotations

import msgspec

from monitor.core.alerts import AlertBook, dedup_key
from monitor.core.findings import Finding

CONTRACT_FIELDS = {"alert_id", "rule_id", "risk_id", "severity", "domain", "org_id", "event_ids", "first_seen",
                   "last_seen", "count", "score", "title", "message", "legal_basis", "owner"}


def finding(ids, first, last, **values):
    return Finding("proc_split_purchase", ("ORG1", "S1", "goods"), ids, first, last,
                   {"org_id": "ORG1", "attributes.category": "goods", "counterparty_name": "临江建材",
                    "count": float(len(ids)), "sum_amount": 2.1e6, **values})


def test_new_alert_carries_the_risk_entry(default_pack):
    book = AlertBook(default_pack)
    (alert,) = book.merge([finding(["e1", "e2"], 1772416800.0, 1772503200.0)])
    record = msgspec.to_builtins(alert)
    assert CONTRACT_FIELDS <= set(record)
    assert {k: record[k] for k in ("rule_id", "risk_id", "severity", "domain", "org_id", "event_ids", "first_seen",
                                   "last_seen", "count", "score", "owner", "owner_department")} == {
        "rule_id": "proc_split_purchase", "risk_id": "PROC-01", "severity": "high", "domain": "procurement",
        "org_id": "ORG1", "event_ids": ["e1", "e2"], "first_seen": "2026-03-02T02:00:00Z",
        "last_seen": "2026-03-03T02:00:00Z", "count": 1, "score": 0.75,
        "owner": "procurement_compliance_officer", "owner_department": "采购管理部"}
    assert record["message"] == "ORG1: 2 non-tender goods orders to 临江建材, 2,100,000 CNY within 30 days"
    assert record["legal_basis"][0] == "《中华人民共和国招标投标法》第四条"
    assert record["pack_version"] == default_pack.version


def test_the_same_finding_again_updates_the_alert(default_pack):
    book = AlertBook(default_pack)
    first = book.merge([finding(["e1", "e2"], 100.0, 200.0)])[0]
    (again,) = book.merge([finding(["e2", "e3"], 50.0, 300.0)])
    assert again is first and len(book.alerts) == 1
    assert (again.event_ids, again.count) == (["e1", "e2", "e3"], 2)
    assert (again.first_seen, again.last_seen) == ("1970-01-01T00:00:50Z", "1970-01-01T00:05:00Z")


def test_the_message_is_that_of_the_newest_event_whatever_order_the_findings_came_in(default_pack):
    """Two inputs (a payment topic, a procurement topic) deliver a key's events in
    an order no run repeats: the alert must end the same either way."""
    older = finding(["e1"], 100.0, 100.0, sum_amount=1.0e6)
    newer = finding(["e2"], 200.0, 200.0, sum_amount=3.0e6)
    ends = []
    for order in ((older, newer), (newer, older)):
        book = AlertBook(default_pack)
        for f in order:
            book.merge([f])
        (alert,) = book.alerts.values()
        ends.append((alert.message, alert.first_seen, alert.last_seen, sorted(alert.event_ids)))
    assert ends[0] == ends[1]
    assert "3,000,000 CNY" in ends[0][0]


def test_a_batch_folds_in_like_its_findings_one_by_one(default_pack):
    """merge_split folds a batch's findings of one key at once (one message
    rendered, one write): the alert must end as if each came in its own batch,
    an older finding after a newer one included."""
    batch = [finding(["e1"], 100.0, 100.0, sum_amount=1.0e6), finding(["e2"], 300.0, 300.0, sum_amount=3.0e6),
             finding(["e3"], 200.0, 200.0, sum_amount=2.0e6), finding(["e4"], 300.0, 300.0, sum_amount=4.0e6),
             finding(["e0", "e2"], 50.0, 250.0, sum_amount=5.0e6)]
    one_by_one = AlertBook(default_pack)
    for f in batch:
        one_by_one.merge([f])
    at_once = AlertBook(default_pack)
    new, updated = at_once.merge_split(batch)
    assert len(new) == 1 and updated == []
    assert msgspec.to_builtins(new[0]) == msgspec.to_builtins(*one_by_one.alerts.values())
    assert (new[0].count, new[0].event_ids) == (5, ["e1", "e2", "e3", "e4", "e0"])
    assert "4,000,000 CNY" in new[0].message  # the last of the two newest
    new, updated = at_once.merge_split([finding(["e5"], 10.0, 10.0, sum_amount=9.0e6)])
    assert new == [] and "4,000,000 CNY" in updated[0].message and updated[0].first_seen == "1970-01-01T00:00:10Z"


def test_alert_ids_are_stable_across_runs(default_pack):
    a = AlertBook(default_pack).merge([finding(["e1"], 1.0, 1.0)])[0]
    b = AlertBook(default_pack).merge([finding(["e9"], 5.0, 5.0)])[0]
    assert a.alert_id == b.alert_id and len(a.alert_id) == 16


def test_dedup_key_writes_whole_numbers_without_decimals():
    assert dedup_key("fin_duplicate_amount", ("ORG1", "S1", 86420.0)) == "fin_duplicate_amount|ORG1|S1|86420"
    assert dedup_key("fin_duplicate_amount", ("ORG1", "S1", 86420.5)) == "fin_duplicate_amount|ORG1|S1|86420.5"
