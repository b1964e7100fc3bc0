"""The monthly report: figures checked by hand on a small database."""

from __future__ import annotations

import datetime as dt

from openpyxl import load_workbook

from monitor.core.alerts import AlertBook
from monitor.core.findings import Finding
from monitor.cases.tickets import SqlTicketStore
from tests.test_cli import riskwatch

MARCH = dt.datetime(2026, 3, 10, tzinfo=dt.timezone.utc).timestamp()


def test_the_monthly_report_counts_disposals_and_breaches(tmp_path, default_pack):
    db = f"sqlite:///{tmp_path / 't.db'}"
    store = SqlTicketStore(db)
    book = AlertBook(default_pack)
    findings = [Finding("fin_payment_without_contract", (org, key), [key], MARCH, MARCH,
                        {"org_id": org, "amount": 90000.0, "attributes.payment_no": key})
                for org, key in (("SUB01", "A"), ("SUB01", "B"), ("SUB02", "C"), ("SUB02", "D"))]
    findings.append(Finding("fin_payment_without_contract", ("SUB01", "E"), ["E"], MARCH + 40 * 86400, MARCH + 40 * 86400,
                            {"org_id": "SUB01", "amount": 90000.0, "attributes.payment_no": "E"}))  # April: not in the report
    opened = dt.datetime(2026, 3, 11, tzinfo=dt.timezone.utc)
    store.upsert(book.merge(findings), default_pack, opened)  # FIN-01: dispose within 15 days
    ids = {t["event_ids"][0]: t["id"] for t in store.find()}
    store.move(ids["A"], "resolved", "x", opened + dt.timedelta(days=2), outcome="confirmed_violation")   # in time
    store.move(ids["B"], "resolved", "x", opened + dt.timedelta(days=20), outcome="false_positive")       # late
    store.move(ids["B"], "closed", "x", opened + dt.timedelta(days=21))
    store.mark_typical(ids["B"], "x", "供应商先行垫付", opened + dt.timedelta(days=21))
    # C and D stay open: past their deadline by now, so both are breaches
    out = riskwatch("report", "--month", "2026-03", "--db", db, "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    assert "2026-03: 4 tickets, 2 disposed, 3 SLA breaches" in out.stdout
    book_ = load_workbook(tmp_path / "out" / "riskwatch-2026-03.xlsx")
    summary = {row[0]: row[1] for row in book_["概况 Summary"].iter_rows(values_only=True)}
    assert summary == {"预警工单 / Tickets": 4, "已处置 / Disposed": 2, "处置率 / Disposal rate": 0.5,
                       "处置用时中位数（天）/ Median days": 11.0, "超时 / SLA breaches": 3,
                       "确认违规 / Confirmed violations": 1, "误报 / False positives": 1}
    assert [r for r in book_["按单位 By org"].iter_rows(values_only=True)] == [("单位 / Org", "medium"), ("SUB01", 2), ("SUB02", 2)]
    assert list(book_["典型案例 Cases"].iter_rows(values_only=True))[1][3] == "供应商先行垫付"
    html = (tmp_path / "out" / "riskwatch-2026-03.html").read_text(encoding="utf-8")
    assert "合规风险监测月报" in html and "50.0%" in html and "<svg" in html
    only = riskwatch("report", "--month", "2026-03", "--org", "SUB02", "--db", db, "--out", tmp_path / "out")
    assert "2026-03 SUB02: 2 tickets, 0 disposed, 2 SLA breaches" in only.stdout
    assert riskwatch("report", "--month", "March", "--db", db).returncode == 2
