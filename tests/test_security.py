"""The security promises of riskwatch serve and the HTTP connector, one test per
promise: what a probe tried, and that it is refused."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from io import BytesIO, StringIO

import httpx2 as httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from monitor.cases.auth import UserStore
from monitor.cli import main
from monitor.web.serve import MAX_BODY_BYTES, MAX_TEXT, create_app
from tests.test_serve import NOW, auth, login, served  # noqa: F401 - the fixture
from tests.test_serve import XSS as XSS_PAYLOAD

# --- sessions and login ---------------------------------------------------------------------


def test_login_without_the_session_csrf_token_is_refused(served):
    app, _, _, _ = served
    for forged in ("", "x", "anything"):
        client = TestClient(app)  # no session cookie, so no token to match
        r = client.post("/login", data={"username": "head", "password": "head-pass-123", "csrf": forged},
                        follow_redirects=False)
        assert r.status_code == 403, forged
    client = TestClient(app)
    assert login(client, "head", "head-pass-123").status_code == 303  # with the page's token it works


def test_logout_ends_the_session_for_every_copy_of_the_cookie(served):
    app, _, _, _ = served
    client = TestClient(app)
    assert login(client, "wang.fang", "finance-pass-1").status_code == 303
    stolen = dict(client.cookies)
    assert client.get("/", follow_redirects=False).status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    thief = TestClient(app, cookies=stolen)
    assert thief.get("/", follow_redirects=False).headers["location"] == "/login"


def test_replacing_a_user_ends_their_sessions(served):
    app, store, _, _ = served
    client = TestClient(app)
    login(client, "wang.fang", "finance-pass-1")
    UserStore(store.engine).add("wang.fang", "a-new-password-1", "officer", ["财务资金部"])
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_the_cookie_is_secure_behind_tls_only_when_told(served, default_pack):
    app, store, _, _ = served
    plain = login(TestClient(app), "head", "head-pass-123").headers["set-cookie"].lower()
    assert "secure" not in plain and "httponly" in plain and "samesite=strict" in plain
    secure_app = create_app(store, default_pack, session_secret="s", clock=lambda: NOW, secure_cookies=True)
    client = TestClient(secure_app, base_url="https://testserver")
    response = login(client, "head", "head-pass-123")
    assert "secure" in response.headers["set-cookie"].lower()
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_every_answer_carries_the_security_headers(served):
    app, _, tokens, _ = served
    client = TestClient(app)
    answers = [client.get("/health"), client.get("/login"), client.get("/api/tickets"),
               client.get("/api/tickets", headers=auth(tokens["head"])), client.get("/no-such-page")]
    for r in answers:
        assert r.headers["x-frame-options"] == "DENY", r.url
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp, r.url
    page = answers[1]
    nonce = re.search(r"style-src 'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
    assert f'<style nonce="{nonce}">' in page.text
    assert nonce not in client.get("/login").headers["content-security-policy"]  # one per page


def test_password_spraying_from_one_address_is_limited(served):
    """Five failures lock a username; twenty from one address lock the address,
    whichever usernames it tries."""
    app, store, _, _ = served
    users = UserStore(store.engine)
    for i in range(21):
        users.add(f"user{i}", f"password-{i:04d}", "viewer", [])
    client = TestClient(app)
    codes = [login(client, f"user{i}", "wrong-password").status_code for i in range(20)]
    assert codes == [401] * 20
    assert login(client, "user20", "password-0020").status_code == 429


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rotating_x_forwarded_for_does_not_reset_the_limit(tmp_path):
    """riskwatch serve as started from the command line, over a real socket:
    the address that counts is the socket's, not what the client claims."""
    db = f"sqlite:///{tmp_path / 't.db'}"
    assert CliRunner().invoke(main, ["users", "add", "head", "--role", "head", "--db", db,
                                     "--password", "head-pass-123"]).exit_code == 0
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", "--db", db, "--port", str(port),
                               "--metrics-port", "-1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()
                time.sleep(0.2)
        codes = []
        for i in range(6):
            with httpx.Client(base_url=base) as client:
                csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
                password = "head-pass-123" if i == 5 else f"wrong-{i}"
                codes.append(client.post("/login", data={"username": "head", "password": password, "csrf": csrf},
                                         headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code)
        assert codes == [401] * 5 + [429]
    finally:
        server.terminate()
        server.wait(10)


# --- the API --------------------------------------------------------------------------------


def test_openapi_and_docs_need_a_token(served):
    app, _, tokens, _ = served
    client = TestClient(app)
    assert [client.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [404, 404, 404]
    assert client.get("/api/openapi.json").status_code == 401
    assert "/api/tickets" in client.get("/api/openapi.json", headers=auth(tokens["viewer"])).json()["paths"]


def test_tickets_go_only_to_users_who_may_work_them(served):
    app, store, tokens, ids = served
    client = TestClient(app)
    for assignee in ("nobody", "zhao.lei", "viewer"):  # no such user; another department's officer; a reader
        r = client.post(f"/api/tickets/{ids['FIN-01']}/assign", json={"assignee": assignee}, headers=auth(tokens["head"]))
        assert r.status_code == 422, assignee
    assert [a["action"] for a in store.audit(ids["FIN-01"])] == ["open"]
    assert client.post(f"/api/tickets/{ids['FIN-01']}/assign", json={"assignee": "wang.fang"},
                       headers=auth(tokens["head"])).status_code == 200


def test_bodies_and_texts_are_bounded(served):
    app, store, tokens, ids = served
    client = TestClient(app)
    url = f"/api/tickets/{ids['FIN-01']}/comments"
    huge = client.post(url, json={"text": "x" * (MAX_BODY_BYTES + 1)}, headers=auth(tokens["head"]))
    assert huge.status_code == 413

    def chunks():  # no Content-Length: the body is counted as it comes
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    streamed = client.post(url, content=chunks(), headers={**auth(tokens["head"]), "Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert client.post(url, json={"text": "x" * (MAX_TEXT + 1)}, headers=auth(tokens["head"])).status_code == 422
    assert client.post(url, json={"text": "x" * MAX_TEXT}, headers=auth(tokens["head"])).status_code == 201
    assert [a["action"] for a in store.audit(ids["FIN-01"])] == ["open", "comment"]


def test_ticket_ids_beyond_the_database_are_not_found_not_errors(served):
    app, _, tokens, _ = served
    client = TestClient(app, raise_server_exceptions=False)
    login(client, "head", "head-pass-123")
    for ticket_id in ("99999999999999999999", "-1", "0", "9223372036854775807"):
        api = client.get(f"/api/tickets/{ticket_id}", headers=auth(tokens["head"]))
        page = client.get(f"/tickets/{ticket_id}")
        assert api.status_code in (404, 422) and page.status_code in (404, 422), ticket_id


def test_api_tokens_expire_and_can_be_revoked(served):
    app, store, _, _ = served
    users = UserStore(store.engine)
    client = TestClient(app)
    ci, bot = users.new_token("head", "ci"), users.new_token("head", "bot", days=1)
    assert client.get("/api/tickets", headers=auth(ci)).status_code == 200
    assert users.by_token(bot, now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)) is None
    with store.engine.begin() as db:  # as if the day had passed
        db.execute(text("UPDATE api_tokens SET expires_at = :t WHERE label = 'bot'"),
                   {"t": dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)})
    assert client.get("/api/tickets", headers=auth(bot)).status_code == 401
    assert users.revoke_tokens("head", "ci") == 1
    assert client.get("/api/tickets", headers=auth(ci)).status_code == 401
    with pytest.raises(ValueError):
        users.new_token("head", "forever", days=100_000)


def test_tokens_are_revoked_from_the_command_line(tmp_path):
    db = f"sqlite:///{tmp_path / 't.db'}"
    run = CliRunner().invoke
    assert run(main, ["users", "add", "head", "--role", "head", "--db", db, "--password", "head-pass-123"]).exit_code == 0
    token = run(main, ["users", "token", "head", "--label", "ci", "--days", "30", "--db", db]).output.strip()
    users = UserStore(__import__("monitor.cases.tickets", fromlist=["x"]).SqlTicketStore(db).engine)
    assert users.by_token(token).username == "head"
    revoked = run(main, ["users", "revoke", "head", "--db", db])
    assert revoked.exit_code == 0 and "revoked 1" in revoked.output
    assert users.by_token(token) is None
    assert "ci" in run(main, ["users", "tokens", "head", "--db", db]).output


def test_exports_leave_no_files_behind(served, monkeypatch, tmp_path):
    app, _, tokens, _ = served
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    os.mkdir(tmp_path / "tmp")
    client = TestClient(app)
    for fmt in ("csv", "xlsx"):
        assert client.get("/api/exports/tickets", params={"format": fmt}, headers=auth(tokens["head"])).status_code == 200
    assert os.listdir(tmp_path / "tmp") == []


def test_exports_and_reports_write_formulas_and_control_characters_as_text(served, default_pack, tmp_path):
    import csv

    from openpyxl import load_workbook

    app, store, tokens, ids = served
    hostile = '=HYPERLINK("http://evil.example","点此")'
    with store.engine.begin() as db:
        db.execute(text("UPDATE tickets SET title = :t, org_id = :o"), {"t": hostile, "o": "SUB\u0001"})
    client = TestClient(app)
    sheet = load_workbook(BytesIO(client.get("/api/exports/tickets", params={"format": "xlsx"},
                                             headers=auth(tokens["head"])).content)).active
    cells = [c for row in sheet.iter_rows(min_row=2) for c in row]
    assert {c.value for c in cells} >= {hostile, "SUB\ufffd"}
    assert all(c.data_type != "f" for c in cells)
    rows = list(csv.reader(StringIO(client.get("/api/exports/tickets", params={"format": "csv"},
                                               headers=auth(tokens["head"])).content.decode("utf-8-sig"))))
    assert "'" + hostile in rows[1] and "SUB\ufffd" in rows[1]
    month = str(store.get(ids["FIN-01"])["first_seen"])[:7]
    report = CliRunner().invoke(main, ["report", "--month", month, "--db", store.engine.url.render_as_string(False),
                                       "--out", str(tmp_path)])
    assert report.exit_code == 0, report.output
    book = load_workbook(next(tmp_path.glob("riskwatch-*.xlsx")))
    values = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert "SUB\ufffd" in {c.value for c in values} and all(c.data_type != "f" for c in values)


# --- the HTTP connector ---------------------------------------------------------------------


def test_the_http_connector_does_not_start_without_tokens(monkeypatch, tmp_path):
    monkeypatch.delenv("RISKWATCH_HTTP_TOKENS", raising=False)
    result = CliRunner().invoke(main, ["connect", "http", "--broker", "kafka://127.0.0.1:1"])
    assert result.exit_code == 2 and "no tokens" in result.output
    short = tmp_path / "tokens"
    short.write_text("# the ERP\nabc\n")
    result = CliRunner().invoke(main, ["connect", "http", "--tokens-file", str(short), "--broker", "kafka://127.0.0.1:1"])
    assert result.exit_code == 2 and "shorter than 24" in result.output


def test_the_http_connector_without_a_broker_says_so_in_one_line(monkeypatch):
    monkeypatch.setenv("RISKWATCH_HTTP_TOKENS", "rwh_" + "a" * 32)
    result = CliRunner().invoke(main, ["connect", "http", "--broker", "kafka://127.0.0.1:1", "--port", str(_free_port())])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0
    assert "cannot reach the Kafka broker at kafka://127.0.0.1:1" in result.output


def test_the_command_line_too_finds_no_ticket_beyond_the_database(tmp_path):
    db = f"sqlite:///{tmp_path / 't.db'}"
    for command in (["tickets", "show", "99999999999999999999"], ["tickets", "comment", "0", "x", "--as", "a"]):
        result = CliRunner().invoke(main, [*command, "--db", db])
        assert result.exit_code == 1 and "no ticket" in result.output, (command, result.output)


# --- the cockpit, the inbox and its bulk actions, exports: every route the same checks ---------------------

PAGES = ["/", "/inbox", "/inbox?grade=red&q=x", "/exports/tickets.csv", "/exports/tickets.xlsx?status=all"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_a_login(served, path):
    app, _, _, _ = served
    r = TestClient(app).get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_bulk_actions_need_a_login_a_token_and_a_role_that_may_act(served):
    app, store, _, ids = served
    anonymous = TestClient(app)
    r = anonymous.post("/tickets/bulk", data={"ids": [ids["FIN-01"]], "action": "acknowledge", "csrf": "x"},
                       follow_redirects=False)
    assert r.status_code in (303, 403) and store.get(ids["FIN-01"])["status"] == "open"
    officer = TestClient(app)
    login(officer, "zhao.lei", "procure-pass-1")
    csrf = re.search(r'name="csrf" value="([^"]+)"', officer.get("/inbox").text).group(1)
    assert officer.post("/tickets/bulk", data={"ids": [ids["FIN-01"]], "action": "acknowledge"}).status_code == 403
    r = officer.post("/tickets/bulk", data={"ids": [ids["FIN-01"], ids["CON-01"]], "action": "acknowledge", "csrf": csrf})
    assert "已处理 0 条，2 条未处理" in r.text  # another department's, and one his role may not work
    assert {store.get(i)["status"] for i in ids.values()} == {"open"}
    assert officer.post("/tickets/bulk", data={"ids": ["1; drop table tickets"], "action": "acknowledge",
                                               "csrf": csrf}).status_code == 422
    assert officer.post("/tickets/bulk", data={"ids": [ids["FIN-01"]], "action": "close", "csrf": csrf}).status_code == 422


def test_an_officer_sees_only_her_departments_in_the_cockpit_inbox_and_exports(served):
    app, _, _, ids = served
    client = TestClient(app)
    login(client, "zhao.lei", "procure-pass-1")  # 采购管理部: neither ticket is his department's
    assert 'id="tile-open"><span class="big">0<' in client.get("/").text
    assert 'id="total">(0)' in client.get("/inbox", params={"status": "all"}).text
    assert client.get("/exports/tickets.csv", params={"status": "all"}).content.decode("utf-8-sig").count("\n") == 1
    assert client.get("/inbox", params={"q": "FK1", "status": "all"}).text.count('href="/tickets/') == 0


def test_what_the_data_says_is_escaped_on_every_new_page(served):
    app, store, _, ids = served
    from sqlalchemy import update

    from monitor.cases.schema import Ticket

    with store.engine.begin() as conn:  # the XSS payload wherever a page shows ticket text
        conn.execute(update(Ticket).values(counterparty_name=XSS_PAYLOAD, counterparty_id=XSS_PAYLOAD,
                                           assignee=XSS_PAYLOAD, org_id=XSS_PAYLOAD))
    client = TestClient(app)
    login(client, "head", "head-pass-123")
    for path in ("/", "/inbox", f"/inbox?q={XSS_PAYLOAD}", f"/inbox?org={XSS_PAYLOAD}", f"/tickets/{ids['FIN-01']}",
                 f"/tickets/{ids['CON-01']}"):
        html = client.get(path).text
        assert "<script>document.title" not in html and "<img src=x onerror" not in html, path
        assert "&lt;script&gt;" in html or "%3Cscript%3E" in html, path


def test_the_cockpit_and_inbox_answer_in_chinese_and_english(served):
    app, _, _, _ = served
    client = TestClient(app)
    login(client, "head", "head-pass-123")
    assert "驾驶舱" in client.get("/").text and "Cockpit" in client.get("/?lang=en").text
    assert "Overdue only" in client.get("/inbox").text  # the language chosen stays with the session
