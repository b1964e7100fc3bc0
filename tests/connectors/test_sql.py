"""The SQL connector against a real PostgreSQL: cursor kept across restarts, bad rows dead-lettered."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import orjson
from sqlalchemy import create_engine, text

from connectors.file import ConnectorReport
from connectors.mapping import load_mapping
from connectors.sink import MemorySink
from connectors.sql import CursorStore, poll_once, run_sql_connector

MAPPING = Path(__file__).parent.parent.parent / "connectors" / "mappings" / "erp_payments_sql.yaml"
CST = dt.timezone(dt.timedelta(hours=8))


def make_table(url: str) -> str:
    schema = f"erp_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
        conn.execute(text(f"""create table {schema}.fk_payments (
            id bigint generated always as identity primary key, payment_no text, paid_at timestamptz,
            company_code text, amount numeric(18, 2), payee_code text, payee_name text, contract_no text,
            invoice_no text, payee_type text, approver_level text)"""))
    engine.dispose()
    return schema


def insert(url: str, schema: str, rows: list[tuple]) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for no, amount in rows:
            conn.execute(text(f"""insert into {schema}.fk_payments (payment_no, paid_at, company_code, amount, payee_code,
                payee_name, contract_no, invoice_no, payee_type, approver_level)
                values (:no, :at, 'SUB01', :amount, 'SUP-1', '临江建材', 'HT1', :no, 'company', 'department')"""),
                         {"no": no, "at": dt.datetime(2026, 6, 1, 10, tzinfo=CST), "amount": amount})
    engine.dispose()


def test_cursor_survives_restarts_without_gaps_or_repeats(postgres_url, tmp_path):
    schema = make_table(postgres_url)
    mapping = load_mapping(MAPPING)
    mapping.sql.table = f"{schema}.fk_payments"
    mapping.sql.batch = 2
    insert(postgres_url, schema, [("P1", 100), ("P2", 200), ("P3", 300)])
    cursors = CursorStore(tmp_path / "cursor.json")
    sink = MemorySink()
    report = run_sql_connector(postgres_url, mapping, sink, cursors, once=True)
    assert (report.read, report.sent) == (3, 3) and cursors.load() == 3
    insert(postgres_url, schema, [("P4", 400), ("P5", -1)])
    again = MemorySink()  # a new connector process: only the cursor file carries over
    report = run_sql_connector(postgres_url, mapping, again, CursorStore(tmp_path / "cursor.json"), once=True)
    assert (report.read, report.sent, report.dead_lettered) == (2, 1, 1)
    sent = [orjson.loads(v) for _, v in sink.events["riskwatch.events.finance"] + again.events["riskwatch.events.finance"]]
    assert [e["event_id"] for e in sent] == ["FK-P1", "FK-P2", "FK-P3", "FK-P4"]
    assert sent[0]["occurred_at"] == "2026-06-01T10:00:00+08:00" and sent[0]["amount"] == 100.0
    raw, headers = again.dead_letters[0]
    assert headers["riskwatch.reason"] == "negative_amount" and headers["riskwatch.position"] == "id=5"
    assert orjson.loads(raw)["payment_no"] == "P5"
    assert run_sql_connector(postgres_url, mapping, MemorySink(), cursors, once=True).read == 0


def test_cursor_moves_only_after_the_flush(postgres_url, tmp_path):
    schema = make_table(postgres_url)
    mapping = load_mapping(MAPPING)
    mapping.sql.table = f"{schema}.fk_payments"
    insert(postgres_url, schema, [("P1", 100)])

    class FailingSink(MemorySink):
        def flush(self):
            raise RuntimeError("broker unreachable")

    cursors = CursorStore(tmp_path / "cursor.json")
    engine = create_engine(postgres_url)
    try:
        poll_once(engine, mapping, FailingSink(), cursors, ConnectorReport())
    except RuntimeError:
        pass
    finally:
        engine.dispose()
    assert cursors.load() is None  # nothing acknowledged: the next run sends P1 again
