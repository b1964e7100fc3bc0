"""riskwatch serve: the API with roles, the security promises, and the web UI in a
real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from monitor.core.alerts import AlertBook
from monitor.cases.auth import UserStore
from monitor.core.findings import Finding
from monitor.web.serve import create_app
from monitor.cases.tickets import SqlTicketStore

NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.timezone.utc)
XSS = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'


@pytest.fixture()
def served(tmp_path, default_pack):
    """A ticket database with a finance ticket (its counterparty name is an XSS
    payload), a procurement ticket, and one user per role."""
    store = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    book = AlertBook(default_pack)
    alerts = book.merge([
        Finding("fin_payment_without_contract", ("SUB01", "FK1"), ["e1"], 1.0, 2.0,
                {"org_id": "SUB01", "amount": 90000.0, "attributes.payment_no": "FK1", "counterparty_name": XSS}),
        Finding("proc_contract_without_legal_review", ("SUB02", "HT1"), ["e2"], 1.0, 2.0,
                {"org_id": "SUB02", "attributes.contract_id": "HT1", "counterparty_name": "临江恒达"}),
    ])
    alerts[0].message += " " + XSS  # as if a rule message carried the field
    store.upsert(alerts, default_pack, NOW)
    store.add_evidence([(alerts[0].dedup_key, {"event_id": "e1", "type": "payment", "occurred_at": "2026-11-26T10:00:00+08:00",
                                               "org_id": "SUB01", "amount": 90000.0, "counterparty_name": XSS,
                                               "attributes": {"payment_no": "FK1"}})])
    users = UserStore(store.engine)
    users.add("wang.fang", "finance-pass-1", "officer", ["财务资金部"])
    users.add("zhao.lei", "procure-pass-1", "officer", ["采购管理部"])
    users.add("li.na", "legal-pass-123", "officer", ["法律合规部"])
    users.add("viewer", "viewer-pass-12", "viewer", [])
    users.add("head", "head-pass-123", "head", [])
    tokens = {u: users.new_token(u) for u in ("wang.fang", "zhao.lei", "viewer", "head")}
    app = create_app(store, default_pack, session_secret="test-secret", clock=lambda: NOW)
    ids = {t["risk_id"]: t["id"] for t in store.find()}
    return app, store, tokens, ids


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_only_health_is_anonymous(served):
    app, _, tokens, ids = served
    client = TestClient(app)
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/api/tickets").status_code == 401
    assert client.get("/api/tickets", headers=auth("rw_not-a-token")).status_code == 401
    assert client.get(f"/api/tickets/{ids['FIN-01']}").status_code == 401
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    for path in ("/docs", "/redoc", "/openapi.json", "/api/openapi.json"):
        assert client.get(path).status_code in (401, 404), path
    paths = client.get("/api/openapi.json", headers=auth(tokens["viewer"])).json()["paths"]
    assert {"/api/tickets", "/api/tickets/{ticket_id}", "/api/tickets/{ticket_id}/move"} <= set(paths)


def test_officers_see_and_work_only_their_departments(served):
    app, store, tokens, ids = served
    client = TestClient(app)
    mine = client.get("/api/tickets", headers=auth(tokens["wang.fang"])).json()
    assert [t["risk_id"] for t in mine] == ["FIN-01"]
    assert client.get(f"/api/tickets/{ids['CON-01']}", headers=auth(tokens["wang.fang"])).status_code == 404
    assert client.post(f"/api/tickets/{ids['CON-01']}/move", json={"to": "acknowledged"},
                       headers=auth(tokens["wang.fang"])).status_code == 404
    one = client.get(f"/api/tickets/{ids['FIN-01']}", headers=auth(tokens["wang.fang"])).json()
    assert one["risk"]["legal_basis"] and one["rule"]["id"] == "fin_payment_without_contract"
    assert [e["event_id"] for e in one["events"]] == ["e1"] and one["events"][0]["amount"] == 90000.0
    moved = client.post(f"/api/tickets/{ids['FIN-01']}/move", json={"to": "acknowledged", "reason": "已阅"},
                        headers=auth(tokens["wang.fang"]))
    assert moved.status_code == 200 and moved.json()["status"] == "acknowledged"
    bad = client.post(f"/api/tickets/{ids['FIN-01']}/move", json={"to": "closed"}, headers=auth(tokens["wang.fang"]))
    assert bad.status_code == 409 and "cannot be closed" in bad.json()["detail"]
    assert len(client.get("/api/tickets", headers=auth(tokens["viewer"])).json()) == 2
    assert client.post(f"/api/tickets/{ids['CON-01']}/comments", json={"text": "x"},
                       headers=auth(tokens["viewer"])).status_code == 403
    assert client.post(f"/api/tickets/{ids['CON-01']}/assign", json={"assignee": "li.na"},
                       headers=auth(tokens["head"])).status_code == 200
    trail = [(a["actor"], a["action"]) for a in store.audit(ids["CON-01"])]
    assert trail == [("riskwatch", "open"), ("head", "assign")]


def test_closing_a_ticket_is_counted(tmp_path, default_pack, served):
    from prometheus_client import CollectorRegistry

    from monitor.metrics import Metrics

    _, store, tokens, ids = served
    registry = CollectorRegistry()
    client = TestClient(create_app(store, default_pack, "s", lambda: NOW, Metrics(registry)))
    for to, extra in (("resolved", {"outcome": "remediated"}), ("closed", {})):
        assert client.post(f"/api/tickets/{ids['FIN-01']}/move", json={"to": to, **extra},
                           headers=auth(tokens["head"])).status_code == 200
    assert registry.get_sample_value("riskwatch_tickets_closed_total", {"risk": "FIN-01", "outcome": "remediated"}) == 1


def test_filters_do_not_inject_sql(served):
    app, _, tokens, _ = served
    client = TestClient(app)
    for attack in ("' OR '1'='1", "SUB01'; DROP TABLE tickets; --", "%' UNION SELECT * FROM users --"):
        r = client.get("/api/tickets", params={"org": attack, "status": attack}, headers=auth(tokens["head"]))
        assert r.status_code == 200 and r.json() == []
    assert len(client.get("/api/tickets", headers=auth(tokens["head"])).json()) == 2  # the table is still there


def test_exports_are_scoped_downloads(served):
    from io import BytesIO

    from openpyxl import load_workbook

    app, _, tokens, _ = served
    client = TestClient(app)
    r = client.get("/api/exports/tickets", params={"format": "xlsx"}, headers=auth(tokens["wang.fang"]))
    sheet = load_workbook(BytesIO(r.content)).active
    assert r.status_code == 200 and sheet.max_row == 2 and sheet.cell(2, 2).value == "FIN-01"  # her department's only
    assert client.get("/api/exports/tickets", params={"format": "csv"}, headers=auth(tokens["zhao.lei"])).text.count("\n") == 1
    assert client.get("/api/exports/secrets", headers=auth(tokens["head"])).status_code == 404


def login(client, username, password):
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf": csrf}, follow_redirects=False)


def test_pages_escape_what_the_data_says(served):
    app, store, tokens, ids = served
    client = TestClient(app)
    assert login(client, "wang.fang", "finance-pass-1").status_code == 303
    store.comment(ids["FIN-01"], "wang.fang", XSS, NOW)
    html = client.get(f"/tickets/{ids['FIN-01']}").text
    assert "<script>document.title" not in html and '<img src=x onerror' not in html
    assert "&lt;script&gt;document.title" in html and "&lt;img src=x onerror=" in html


def test_forms_need_the_session_csrf_token(served):
    app, _, _, ids = served
    client = TestClient(app)
    login(client, "wang.fang", "finance-pass-1")
    r = client.post(f"/tickets/{ids['FIN-01']}/move", data={"to": "acknowledged", "csrf": "forged"})
    assert r.status_code == 403 and "表单已过期或来源不明" in r.text
    other = TestClient(app)  # no session at all
    assert other.post("/login", data={"username": "wang.fang", "password": "finance-pass-1"}).status_code == 403


def test_logins_are_rate_limited(served):
    app, _, _, _ = served
    client = TestClient(app)
    codes = [login(client, "wang.fang", f"wrong-{i}").status_code for i in range(5)]
    assert codes == [401] * 5
    assert login(client, "wang.fang", "finance-pass-1").status_code == 429  # even the right one, for a while
    assert login(client, "head", "head-pass-123").status_code == 303  # another user is not locked out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@contextmanager
def in_browser(app):
    """The app served on a free port, and a page of Debian's Chromium (driven by Playwright): (page, base URL)."""
    import uvicorn
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: scripts/test installs Debian's chromium")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                yield browser.new_page(viewport={"width": 1400, "height": 900}), f"http://127.0.0.1:{port}"
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def browser_login(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/")
    assert page.url.endswith("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login")
    page.wait_for_url(f"{base}/")


def test_a_compliance_officer_disposes_of_a_ticket_in_a_real_browser(served, tmp_path):
    app, store, _, ids = served
    with in_browser(app) as (page, base):
        browser_login(page, base, "wang.fang", "finance-pass-1")
        page.goto(f"{base}/inbox")
        assert page.inner_text("h1") == "工单 (1)"
        page.click(f"a[href='/tickets/{ids['FIN-01']}'] >> nth=0")
        assert page.inner_text("#status") == "待签收"
        assert page.title() != "pwned"  # the payload in the evidence did not run
        page.fill("form:has(#to-acknowledged) input[name=reason]", "已阅，核查中")
        page.click("#to-acknowledged")
        assert page.inner_text("#status") == "已签收"
        page.select_option("#outcome-select", "confirmed_violation")
        page.fill("form:has(#to-resolved) input[name=reason]", "付款时无合同")
        page.click("#to-resolved")
        assert page.inner_text("#status") == "已处置" and page.inner_text("#outcome") == "确认违规"
        audit = page.inner_text("#audit")
        assert "待签收 → 已签收" in audit and "已签收 → 已处置" in audit and "付款时无合同" in audit
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "ticket-resolved.png"), full_page=True)
        page.goto(f"{base}/tickets/{ids['CON-01']}")
        assert page.inner_text("#error") == "没有该工单或页面"  # another department's ticket does not exist for her
    assert store.get(ids["FIN-01"])["outcome"] == "confirmed_violation"
