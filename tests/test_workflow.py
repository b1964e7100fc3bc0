"""The disposal workflow on both databases: moves, audit trail, escalation, exports."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from monitor.cases.tickets import SqlTicketStore, TicketError
from monitor.cases.workflow import WorkflowError
from tests.test_tickets import NOW, alerts_for, database_url  # noqa: F401 - the fixture runs on SQLite and PostgreSQL


@pytest.fixture()
def store(database_url, default_pack):  # noqa: F811
    s = SqlTicketStore(database_url)
    s.upsert(alerts_for(default_pack, "FK1", "FK2"), default_pack, NOW)
    return s


def later(**kw) -> dt.datetime:
    return NOW + dt.timedelta(**kw)


def test_a_ticket_goes_through_the_workflow_and_every_step_is_audited(store):
    t = store.find(status="open")[-1]["id"]
    store.assign(t, "wang.fang", "li.ming", later(minutes=5), "finance officer on duty")
    store.move(t, "acknowledged", "wang.fang", later(hours=1), "seen")
    store.move(t, "investigating", "wang.fang", later(hours=2))
    store.comment(t, "wang.fang", "the contract was signed after payment", later(hours=3))
    row = store.move(t, "resolved", "wang.fang", later(days=1), "payment made before the contract", outcome="confirmed_violation")
    assert (row["status"], row["outcome"], row["assignee"]) == ("resolved", "confirmed_violation", "wang.fang")
    store.move(t, "closed", "li.ming", later(days=2))
    store.mark_typical(t, "li.ming", "先付款后签合同：付款前须核对合同", later(days=3))
    trail = [(a["actor"], a["action"], a["from_status"], a["to_status"], a["reason"]) for a in store.audit(t)]
    assert trail == [
        ("riskwatch", "open", None, "open", trail[0][4]),
        ("li.ming", "assign", None, None, "finance officer on duty"),
        ("wang.fang", "move", "open", "acknowledged", "seen"),
        ("wang.fang", "move", "acknowledged", "investigating", None),
        ("wang.fang", "comment", None, None, "the contract was signed after payment"),
        ("wang.fang", "move", "investigating", "resolved", "payment made before the contract"),
        ("li.ming", "move", "resolved", "closed", None),
        ("li.ming", "typical_case", None, None, "先付款后签合同：付款前须核对合同"),
    ]
    assert [v["id"] for v in store.violations()] == [t] and [c["id"] for c in store.typical_cases()] == [t]


def test_moves_the_workflow_does_not_allow_are_refused(store):
    t = store.find()[0]["id"]
    with pytest.raises(WorkflowError, match="a ticket that is open cannot be closed"):
        store.move(t, "closed", "x", NOW)
    with pytest.raises(WorkflowError, match="outcome must be one of"):
        store.move(t, "resolved", "x", NOW)
    with pytest.raises(TicketError, match="only closed tickets become typical cases"):
        store.mark_typical(t, "x", "summary", NOW)
    with pytest.raises(TicketError, match="no ticket 99999"):
        store.move(99999, "acknowledged", "x", NOW)
    assert [a["action"] for a in store.audit(t)] == ["open"]  # nothing refused was recorded


def test_reopening_brings_a_ticket_back_and_clears_its_outcome(store, default_pack):
    t = store.find()[0]["id"]
    store.move(t, "resolved", "x", NOW, outcome="false_positive")
    store.move(t, "closed", "x", NOW)
    row = store.move(t, "open", "y", later(days=1), "the same payment was made again")
    assert (row["status"], row["outcome"], row["closed_at"]) == ("open", None, None)


def test_the_audit_trail_cannot_be_changed_or_deleted(store):
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE ticket_audit SET actor = 'someone else'"))
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM ticket_audit"))
    assert len(store.audit(store.find()[0]["id"])) == 1


def test_overdue_tickets_escalate_to_the_head_then_the_general_counsel(store, default_pack):
    # FIN-01: acknowledge within 2 days, dispose within 15
    assert store.escalate(default_pack, later(days=1)) == []
    first = store.escalate(default_pack, later(days=3))  # not acknowledged in time
    assert {(d["level"], d["to"]) for d in first} == {(1, "compliance_head")} and len(first) == 2
    assert store.escalate(default_pack, later(days=20)) == []  # level 2 waits a whole dispose period past the deadline
    second = store.escalate(default_pack, later(days=31))
    assert {(d["level"], d["to"]) for d in second} == {(2, "general_counsel")}
    assert store.escalate(default_pack, later(days=90)) == []
    t = store.find()[0]
    assert (t["escalation_level"], t["escalated_to"]) == (2, "general_counsel")
    assert [a["detail"] for a in store.audit(t["id"]) if a["action"] == "escalate"] == [
        {"level": 1, "to": "compliance_head"}, {"level": 2, "to": "general_counsel"}]


def test_resolved_tickets_do_not_escalate(store, default_pack):
    for t in store.find():
        store.move(t["id"], "resolved", "x", NOW, outcome="remediated")
    assert store.escalate(default_pack, later(days=60)) == []


def test_exports_to_csv_and_xlsx(store, tmp_path):
    from openpyxl import load_workbook

    from monitor.cases.exports import write_export

    t = store.find()[0]["id"]
    store.move(t, "resolved", "x", NOW, outcome="confirmed_violation")
    assert write_export(tmp_path / "v.csv", "violations", store.violations()) == 1
    text_ = (tmp_path / "v.csv").read_text(encoding="utf-8-sig")
    assert text_.splitlines()[0].startswith("工单号 / Ticket,风险编号 / Risk") and "confirmed_violation" in text_
    write_export(tmp_path / "t.xlsx", "tickets", store.find())
    sheet = load_workbook(tmp_path / "t.xlsx").active
    assert sheet.title == "工单" and sheet.max_row == 3 and sheet.cell(1, 1).value == "工单号 / Ticket"


def test_migrations_bring_an_old_database_up_to_date(tmp_path, default_pack):
    """A database made before migrations (tickets table only) is stamped and upgraded."""
    from sqlalchemy import create_engine, inspect

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE tickets (id INTEGER PRIMARY KEY, dedup_key VARCHAR(512), alert_id VARCHAR(32), "
                          "rule_id VARCHAR(128), risk_id VARCHAR(32), severity VARCHAR(16), domain VARCHAR(32), "
                          "org_id VARCHAR(64), owner_post VARCHAR(128), owner_department VARCHAR(128), title VARCHAR(256), "
                          "message TEXT, status VARCHAR(16), event_ids JSON, hits INTEGER, first_seen VARCHAR(40), "
                          "last_seen VARCHAR(40), opened_at DATETIME, updated_at DATETIME, ack_due_at DATETIME, "
                          "due_at DATETIME, alert JSON, pack_version VARCHAR(32))"))
        conn.execute(text("CREATE TABLE rule_pack_versions (version VARCHAR(32) PRIMARY KEY, first_loaded_at DATETIME, "
                          "last_loaded_at DATETIME, loads INTEGER, rules INTEGER, detectors INTEGER)"))
    store = SqlTicketStore(url)
    assert {"ticket_audit", "alembic_version"} <= set(inspect(store.engine).get_table_names())
    store.upsert(alerts_for(default_pack, "FK9"), default_pack, NOW)
    assert store.find()[0]["escalation_level"] == 0


def test_a_database_at_the_newest_schema_opens_without_alembic(tmp_path):
    """The usual start reads the revision and skips Alembic; the head it compares
    with is the one Alembic reads from the scripts; a database one behind is upgraded."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from monitor.cases import schema

    config = Config()
    config.set_main_option("script_location", "monitor.cases:migrations")
    assert schema.head_revision() == ScriptDirectory.from_config(config).get_current_head()
    url = f"sqlite:///{tmp_path / 't.db'}"
    store = SqlTicketStore(url)
    assert schema._at_head(store.engine)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0009'"))
        conn.execute(text("DROP TABLE admin_audit"))
    assert not schema._at_head(store.engine)
    SqlTicketStore(url)  # upgraded again
    assert schema._at_head(store.engine)
    assert not schema._at_head(create_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
