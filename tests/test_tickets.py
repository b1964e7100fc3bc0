"""Tickets: one per live finding, owner from the duty list, deadlines from the SLA."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from monitor.alerts import AlertBook
from monitor.scorer import Finding
from monitor.tickets import MemoryTicketStore, SqlTicketStore

NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.timezone.utc)


def alerts_for(pack, *keys, ids=("e1",)):
    book = AlertBook(pack)
    findings = [Finding("fin_payment_without_contract", ("ORG1", k), list(ids), 1.0, 2.0,
                        {"org_id": "ORG1", "amount": 90000.0, "attributes.payment_no": k}) for k in keys]
    return book.merge(findings)


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    return SqlTicketStore(f"sqlite:///{tmp_path}/t.db") if request.param == "sqlite" else MemoryTicketStore()


def test_new_alert_opens_a_routed_ticket_with_deadlines(store, default_pack):
    result = store.upsert(alerts_for(default_pack, "FK1"), default_pack, NOW)
    assert (len(result.opened), len(result.updated), store.open_count()) == (1, 0, 1)
    (ticket,) = store.tickets()
    due = lambda d: d.replace(tzinfo=dt.timezone.utc) if d.tzinfo is None else d  # SQLite drops the zone
    assert {k: ticket[k] for k in ("dedup_key", "risk_id", "owner_post", "owner_department", "status", "event_ids")} == {
        "dedup_key": "fin_payment_without_contract|ORG1|FK1", "risk_id": "FIN-01",
        "owner_post": "finance_compliance_officer", "owner_department": "财务资金部", "status": "open",
        "event_ids": ["e1"]}
    assert due(ticket["ack_due_at"]) == NOW + dt.timedelta(days=2)
    assert due(ticket["due_at"]) == NOW + dt.timedelta(days=15)


def test_same_alert_again_updates_instead_of_opening(store, default_pack):
    store.upsert(alerts_for(default_pack, "FK1"), default_pack, NOW)
    result = store.upsert(alerts_for(default_pack, "FK1", ids=("e1", "e2")), default_pack, NOW)
    assert (len(result.opened), len(result.updated), store.open_count()) == (0, 1, 1)
    assert store.tickets()[0]["event_ids"] == ["e1", "e2"]


def test_concurrent_writers_never_open_two_tickets(tmp_path, default_pack):
    url = f"sqlite:///{tmp_path}/shared.db"
    SqlTicketStore(url)
    errors = []

    def writer():
        try:
            SqlTicketStore(url).upsert(alerts_for(default_pack, "FK1", "FK2", "FK3"), default_pack, NOW)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = SqlTicketStore(url)
    assert errors == [] and sorted(t["dedup_key"][-3:] for t in store.tickets()) == ["FK1", "FK2", "FK3"]


def test_overdue_counts_by_risk(tmp_path, default_pack):
    store = SqlTicketStore(f"sqlite:///{tmp_path}/t.db")
    store.upsert(alerts_for(default_pack, "FK1", "FK2"), default_pack, NOW)
    assert store.overdue_by_risk(NOW + dt.timedelta(days=1)) == {}
    assert store.overdue_by_risk(NOW + dt.timedelta(days=16)) == {("FIN-01", "medium"): 2}
