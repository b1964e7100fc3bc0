"""Tickets: one per live finding, owner from the duty list, deadlines from the SLA."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from monitor.core.alerts import AlertBook
from monitor.core.findings import Finding
from monitor.cases.tickets import MemoryTicketStore, SqlTicketStore

NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.timezone.utc)


def alerts_for(pack, *keys, ids=("e1",)):
    book = AlertBook(pack)
    findings = [Finding("fin_payment_without_contract", ("ORG1", k), list(ids), 1.0, 2.0,
                        {"org_id": "ORG1", "amount": 90000.0, "attributes.payment_no": k}) for k in keys]
    return book.merge(findings)


def pg_schema_url(base_url: str) -> str:
    """A fresh schema on the test PostgreSQL, as a URL whose connections use it."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base_url)
    with engine.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    engine.dispose()
    return f"{base_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/t.db"
    return pg_schema_url(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sql", "memory"])
def store(request, database_url):
    # The fake must behave as the real stores do: the same tests run on all three.
    return SqlTicketStore(database_url) if request.param == "sql" else MemoryTicketStore()


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


def test_concurrent_writers_never_open_two_tickets(database_url, default_pack):
    url = database_url
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


def test_ticket_writes_of_a_worker_whose_partitions_were_claimed_since_are_refused(database_url, default_pack):
    """A zombie worker (frozen, its partitions given to another) must not write tickets when it wakes."""
    from monitor.cases.tickets import Fence, FencedError

    store = SqlTicketStore(database_url)
    store.claim_partitions("rw", [0, 1, 2], "zombie", NOW)
    zombie = Fence("rw", "zombie", frozenset({1, 2}))
    assert len(store.upsert(alerts_for(default_pack, "FK1"), default_pack, NOW, fence=zombie).opened) == 1
    store.claim_partitions("rw", [2], "heir", NOW)  # partition 2 moves on
    with pytest.raises(FencedError, match=r"input partitions \[2\] of rw"):
        store.upsert(alerts_for(default_pack, "FK2"), default_pack, NOW, fence=zombie)
    assert len(store.upsert(alerts_for(default_pack, "FK3"), default_pack, NOW, fence=Fence("rw", "zombie", frozenset({1})))
               .opened) == 1  # what it still owns
    assert len(store.upsert(alerts_for(default_pack, "FK2"), default_pack, NOW, fence=Fence("rw", "heir", frozenset({2})))
               .opened) == 1
    assert sorted(t["dedup_key"][-3:] for t in store.tickets()) == ["FK1", "FK2", "FK3"]


def test_overdue_counts_by_risk(database_url, default_pack):
    store = SqlTicketStore(database_url)
    store.upsert(alerts_for(default_pack, "FK1", "FK2"), default_pack, NOW)
    assert store.overdue_by_risk(NOW + dt.timedelta(days=1)) == {}
    assert store.overdue_by_risk(NOW + dt.timedelta(days=16)) == {("FIN-01", "medium"): 2}


def test_evidence_names_the_tickets_counterparty_once(database_url, default_pack):
    store = SqlTicketStore(database_url)
    alerts = alerts_for(default_pack, "FK1", "FK2", "FK3")
    store.upsert(alerts, default_pack, NOW)
    event = {"type": "payment", "occurred_at": "2026-11-26T10:00:00+08:00"}
    store.add_evidence([(alerts[0].dedup_key, {**event, "event_id": "e1"}),  # names no one
                        (alerts[0].dedup_key, {**event, "event_id": "e2", "counterparty_id": "SUP-1",
                                               "counterparty_name": "临江建材"}),
                        (alerts[1].dedup_key, {**event, "event_id": "e3", "counterparty_name": "北塘电气"})])
    store.add_evidence([(alerts[0].dedup_key, {**event, "event_id": "e4", "counterparty_id": "SUP-9"})])
    named = {t["dedup_key"]: (t["counterparty_id"], t["counterparty_name"]) for t in store.tickets()}
    assert named == {alerts[0].dedup_key: ("SUP-1", "临江建材"), alerts[1].dedup_key: (None, "北塘电气"),
                     alerts[2].dedup_key: (None, None)}


def test_a_tickets_dedup_key_is_looked_up_through_the_open_ticket_index(tmp_path, default_pack):
    """Thousands of tickets a run: a look-up by key that read them all (the
    counterparty update once did, through the counterparty_id index) makes
    every flush slower than the last."""
    from sqlalchemy import select, update

    from monitor.cases.schema import OPEN_TICKET, Ticket

    store = SqlTicketStore(f"sqlite:///{tmp_path}/t.db")
    statements = [select(Ticket).where(Ticket.dedup_key.in_(["a", "b"]), OPEN_TICKET),
                  update(Ticket).where(Ticket.dedup_key == "a", OPEN_TICKET, Ticket.counterparty_id.is_(None),
                                       Ticket.counterparty_name.is_(None)).values(counterparty_id="x")]
    with store.engine.connect() as conn:
        for statement in statements:
            compiled = statement.compile(conn, compile_kwargs={"render_postcompile": True})  # values stay bound
            bound = tuple(compiled.params[name] for name in compiled.positiontup)
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", bound).all()
            assert any("uq_tickets_open_dedup_key" in row[-1] for row in plan), plan


def test_review_judgements_are_kept_one_row_a_matter_its_latest_judgement(database_url):
    """A matter judged again (in the same call or a later one) keeps its latest judgement;
    a call of more rows than one statement carries keeps them all."""
    from monitor.core.reviews import Judgement

    store = SqlTicketStore(database_url)
    march = dt.datetime(2026, 3, 10, tzinfo=dt.timezone.utc).timestamp()
    many = [Judgement("RC-CON-01", f"SUB{i % 7:02d}", f"HT{i}", "contract", march + i, i % 3 == 0) for i in range(1203)]
    store.record_reviews(many + [Judgement("RC-CON-01", "SUB00", "HT0", "contract", march, False)])
    rates = {(r["org_id"], r["month"]): (r["reviewed"], r["executed"]) for r in store.review_rates()}
    assert sum(e for _r, e in rates.values()) == 1203
    assert rates[("SUB00", "2026-03")] == (sum(1 for i in range(1203) if i % 7 == 0 and i % 3 == 0) - 1,
                                          sum(1 for i in range(1203) if i % 7 == 0))  # HT0 judged again: not reviewed
    later = dt.datetime(2026, 4, 2, tzinfo=dt.timezone.utc).timestamp()
    store.record_reviews([Judgement("RC-CON-01", "SUB01", "HT1", "contract", later, True)])  # executed again, in April
    assert {(r["org_id"], r["month"], r["reviewed"], r["executed"]) for r in store.review_rates("2026-04")} == {
        ("SUB01", "2026-04", 1, 1)}
    assert sum(r["executed"] for r in store.review_rates()) == 1203
