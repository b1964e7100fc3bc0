"""The inbox: filters, search, sort, pages, scope, bulk actions and exports, on SQLite and
PostgreSQL; the message catalogue; no English status on a Chinese page."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from io import BytesIO

import pytest
from fastapi.testclient import TestClient

from monitor.cases.auth import UserStore
from monitor.cases.inbox import TicketFilter, search
from monitor.cases.tickets import SqlTicketStore
from monitor.core.alerts import AlertBook
from monitor.core.findings import Finding
from monitor.packs.rulefiles import default_rules_dir, load_orgs
from monitor.web.i18n import MESSAGES, VALUES
from monitor.web.serve import create_app
from tests.test_serve import login
from tests.test_tickets import database_url  # noqa: F401 - the fixture, on SQLite and PostgreSQL

NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.timezone.utc)
# (rule, how many, orgs they rotate over): 60 finance (medium: yellow), 20 legal (high: red),
# 6 detector (low: blue), 4 sanctions (critical: red)
PLAN = [("fin_payment_without_contract", 60, ["SUB01", "SUB02", "SUB03"]),
        ("proc_contract_without_legal_review", 20, ["SUB04", "SUB05"]),
        ("det_payment_pattern", 6, ["SUB06"]),
        ("gov_sanctioned_counterparty", 4, ["SUB12"])]


def make_tickets(store: SqlTicketStore, pack) -> None:
    book = AlertBook(pack)
    findings, evidence = [], []
    for rule_id, count, orgs in PLAN:
        for i in range(count):
            org = orgs[i % len(orgs)]
            findings.append(Finding(rule_id, (org, f"{rule_id[:3]}{i}"), [f"{rule_id}-{i}"], 1.0, 2.0,
                                    {"org_id": org, "counterparty_name": "x"}))
    alerts = book.merge(findings)
    store.upsert(alerts, pack, NOW)
    for n, alert in enumerate(alerts):
        name = "临江恒达建材有限公司" if n % 10 == 0 else f"供应商{n}"
        evidence.append((alert.dedup_key, {"event_id": alert.event_ids[0], "type": "payment", "org_id": alert.org_id,
                                           "occurred_at": "2026-11-26T10:00:00+08:00", "counterparty_id": f"SUP-{n % 7}",
                                           "counterparty_name": name}))
    store.add_evidence(evidence)


@pytest.fixture()
def tickets(database_url, default_pack):  # noqa: F811
    store = SqlTicketStore(database_url)
    make_tickets(store, default_pack)
    users = UserStore(store.engine)
    users.add("wang.fang", "finance-pass-1", "officer", ["财务资金部"])
    users.add("li.na", "legal-pass-123", "officer", ["法律合规部"])
    users.add("viewer", "viewer-pass-12", "viewer", [])
    users.add("head", "head-pass-123", "head", [])
    return store


def found(store, pack, scope=None, **query) -> tuple[int, list[dict]]:
    page = search(store.engine, pack, TicketFilter.from_query({k: str(v) for k, v in query.items()}), scope, NOW,
                  load_orgs(default_rules_dir())[0])
    return page.total, page.rows


def test_each_filter_selects_what_it_names(tickets, default_pack):
    assert found(tickets, default_pack)[0] == 90
    assert found(tickets, default_pack, grade="red")[0] == 24
    assert found(tickets, default_pack, grade="blue")[0] == 6
    assert found(tickets, default_pack, severity="medium")[0] == 60
    assert found(tickets, default_pack, area="contract")[0] == 20
    assert found(tickets, default_pack, risk="FIN-01", org="SUB02")[0] == 20
    assert found(tickets, default_pack, source="detector")[0] == 6
    assert found(tickets, default_pack, source="rule")[0] == 84
    assert found(tickets, default_pack, rule="gov_sanctioned_counterparty")[0] == 4
    assert found(tickets, default_pack, post="finance_compliance_officer")[0] == 66
    assert found(tickets, default_pack, org="JCGROUP")[0] == 90  # the group and every company below it
    assert found(tickets, default_pack, org="SUB12")[0] == 4
    assert found(tickets, default_pack, overdue=1)[0] == 0
    assert found(tickets, default_pack, opened_from="2026-11-28")[0] == 0
    assert found(tickets, default_pack, opened_from="2026-11-27", opened_to="2026-11-27")[0] == 90
    # full text: title, counterparty name and id, the ids in the key
    assert found(tickets, default_pack, q="恒达")[0] == 9
    assert found(tickets, default_pack, q="sup-3")[0] == len([n for n in range(90) if n % 7 == 3])
    assert found(tickets, default_pack, q="gov7")[0] == 0 and found(tickets, default_pack, q="gov3")[0] == 1
    assert found(tickets, default_pack, q="100%_")[0] == 0  # LIKE's wildcards are searched as text


def test_an_officer_sees_only_her_departments(tickets, default_pack):
    assert found(tickets, default_pack, scope=("法律合规部",))[0] == 20
    assert found(tickets, default_pack, scope=("法律合规部",), grade="yellow")[0] == 0


def test_pages_and_sorts_cover_every_ticket_once(tickets, default_pack):
    seen = []
    for page in (1, 2):
        total, rows = found(tickets, default_pack, per_page=50, page=page, sort="severity_first")
        seen += rows
    assert total == 90 and len({r["id"] for r in seen}) == 90
    ranks = [{"critical": 0, "high": 1, "medium": 2, "low": 3}[r["severity"]] for r in seen]
    assert ranks == sorted(ranks)
    assert found(tickets, default_pack, page=99)[1][-1]["id"] == min(r["id"] for r in seen)  # past the end: the last page
    newest = [r["id"] for r in found(tickets, default_pack, per_page=5)[1]]
    assert newest == sorted(newest, reverse=True)


def test_a_filter_survives_its_url():
    f = TicketFilter.from_query({"grade": "red", "overdue": "on", "q": "恒达", "page": "3", "sort": "due_first"})
    assert TicketFilter.from_query(f.query()) == f
    assert f.query(page=1) == {"grade": "red", "overdue": "1", "q": "恒达", "sort": "due_first"}
    assert TicketFilter.from_query({}).status == "active" and TicketFilter.from_query({"status": "all"}).status == "all"


@pytest.fixture()
def web(tickets, default_pack):
    return TestClient(create_app(tickets, default_pack, "s", lambda: NOW, orgs=load_orgs(default_rules_dir())[0]))


def test_the_inbox_page_filters_pages_and_names_orgs(web, tickets):
    login(web, "head", "head-pass-123")
    html = web.get("/inbox", params={"grade": "red", "per_page": "10"}).text
    assert re.search(r'id="total">\(24\)', html) and html.count('name="ids"') == 10
    assert 'href="/inbox?grade=red&amp;page=2&amp;per_page=10"' in html  # the next page keeps the filter
    assert '<span title="SUB12">Jiangcheng Europe GmbH（江城欧洲）</span>' in html  # names, the id on hover
    assert 'href="/exports/tickets.csv?grade=red&amp;per_page=10"' in html


def test_bulk_acknowledge_and_assign_go_through_each_tickets_checks(web, tickets, default_pack):
    login(web, "li.na", "legal-pass-123")
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/inbox").text).group(1)
    legal = [r["id"] for r in found(tickets, default_pack, scope=("法律合规部",), per_page=3)[1]]
    finance = found(tickets, default_pack, scope=("财务资金部",), per_page=1)[1][0]["id"]
    r = web.post("/tickets/bulk", data={"ids": [*legal, finance], "action": "acknowledge", "reason": "批量签收",
                                        "csrf": csrf, "back": "grade=red"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/inbox?grade=red"
    assert [tickets.get(i)["status"] for i in legal] == ["acknowledged"] * 3
    assert tickets.get(finance)["status"] == "open"  # another department's: not hers to touch
    assert "已处理 3 条，1 条未处理" in web.get("/inbox").text
    assert [(a["actor"], a["action"], a["reason"]) for a in tickets.audit(legal[0])][-1] == ("li.na", "move", "批量签收")
    r = web.post("/tickets/bulk", data={"ids": legal[:2], "action": "assign", "assignee": "wang.fang", "csrf": csrf})
    assert "已处理 0 条，2 条未处理" in r.text  # wang.fang may not work legal's tickets
    r = web.post("/tickets/bulk", data={"ids": legal[:2], "action": "acknowledge", "csrf": "forged"})
    assert r.status_code == 403


def test_viewers_get_no_bulk_form_and_cannot_post_one(web, tickets, default_pack):
    login(web, "viewer", "viewer-pass-12")
    page = web.get("/inbox").text
    assert 'name="ids"' not in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    some = [t["id"] for t in found(tickets, default_pack, per_page=2)[1]]
    r = web.post("/tickets/bulk", data={"ids": some, "action": "acknowledge", "csrf": csrf})
    assert "已处理 0 条，2 条未处理" in r.text
    assert {tickets.get(i)["status"] for i in some} == {"open"}


def test_the_export_is_exactly_the_filtered_set(web, tickets, default_pack):
    from openpyxl import load_workbook

    login(web, "head", "head-pass-123")
    book = load_workbook(BytesIO(web.get("/exports/tickets.xlsx", params={"grade": "red", "q": "恒达"}).content))
    ids = sorted(row[0] for row in book.active.iter_rows(min_row=2, values_only=True))
    assert ids == sorted(r["id"] for r in found(tickets, default_pack, grade="red", q="恒达", per_page=200)[1])
    assert ids and len(ids) < 24
    login(web, "wang.fang", "finance-pass-1")
    csv_text = web.get("/exports/tickets.csv", params={"status": "all"}).content.decode("utf-8-sig")
    assert csv_text.count("\n") == 1 + 66  # her departments' tickets only


class _Text(HTMLParser):
    """The text a person reads on a page (not inside <style> or attribute values)."""

    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], False

    def handle_starttag(self, tag, attrs):
        self._skip = tag in ("style", "script", "code")

    def handle_endtag(self, tag):
        self._skip = False

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def english_values_shown(html: str) -> set[str]:
    parser = _Text()
    parser.feed(html)
    text = " ".join(parser.parts)
    english = {v for kind in ("status", "outcome", "severity", "grade", "move") for v in VALUES["en"][kind]}
    english |= {v for kind in ("status", "outcome", "severity", "grade", "move") for v in VALUES["en"][kind].values()}
    return {w for w in english if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text)}


def test_a_chinese_page_shows_no_english_status(web, tickets, default_pack):
    login(web, "head", "head-pass-123")
    ticket = found(tickets, default_pack)[1][0]["id"]
    web.post(f"/tickets/{ticket}/move", data={"to": "acknowledged", "reason": "r", "csrf": re.search(
        r'name="csrf" value="([^"]+)"', web.get("/inbox").text).group(1)})
    for path in ("/", "/inbox", "/inbox?status=all", f"/tickets/{ticket}"):
        html = web.get(path).text
        assert english_values_shown(html) == set(), path
    english = web.get(f"/tickets/{ticket}", params={"lang": "en"}).text
    assert "Acknowledged" in english and "已签收" not in english  # and complete in English


def test_the_check_finds_an_english_status():
    assert english_values_shown("<td>acknowledged</td><td>核查中</td>") == {"acknowledged"}


def test_both_languages_have_every_message_and_value():
    assert MESSAGES["zh"].keys() == MESSAGES["en"].keys()
    assert not set(MESSAGES["zh"]) & set(dir(dict))  # t.clear in a template would be dict.clear
    assert VALUES["zh"].keys() == VALUES["en"].keys()
    for kind in VALUES["zh"]:
        assert VALUES["zh"][kind].keys() == VALUES["en"][kind].keys(), kind
    from monitor.cases.workflow import OUTCOMES, STATES

    assert set(VALUES["zh"]["status"]) == set(STATES) and set(VALUES["zh"]["outcome"]) == set(OUTCOMES)


def test_filters_search_paging_and_bulk_acknowledge_in_a_real_browser(tickets, default_pack):
    from tests.test_serve import SHOTS, browser_login, in_browser

    app = create_app(tickets, default_pack, "s", lambda: NOW, orgs=load_orgs(default_rules_dir())[0])
    with in_browser(app) as (page, base):
        browser_login(page, base, "head", "head-pass-123")
        page.goto(f"{base}/inbox")
        assert page.inner_text("#total") == "(90)" and page.inner_text("#page-of") == "第 1 / 2 页，共 90 条"
        page.select_option("select[name=grade]", "red")
        page.fill("input[name=q]", "恒达")
        page.click("#apply")
        page.wait_for_url("**/inbox?*grade=red*")
        expected = found(tickets, default_pack, grade="red", q="恒达")[0]
        assert page.inner_text("#total") == f"({expected})" and "q=%E6%81%92%E8%BE%BE" in page.url  # saved in the URL
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "inbox-filtered.png"), full_page=True)
        page.goto(f"{base}/inbox?per_page=20&sort=severity_first")
        page.click("#next")
        assert "page=2" in page.url and page.inner_text("#page-of") == "第 2 / 5 页，共 90 条"
        first_two = page.locator("#tickets input[name=ids]")
        ids = [int(first_two.nth(i).get_attribute("value")) for i in range(2)]
        for i in range(2):
            first_two.nth(i).check()
        page.fill("#bulk input[name=reason]", "批量签收")
        page.click("#bulk-ack")
        assert "已处理 2 条，0 条未处理" in page.inner_text("#flash") and "page=2" in page.url
        assert [tickets.get(i)["status"] for i in ids] == ["acknowledged"] * 2
        statuses = page.locator("#tickets td.status").all_inner_texts()
        assert "已签收" in statuses and not {"open", "acknowledged"} & set(statuses)
        page.screenshot(path=str(SHOTS / "inbox.png"), full_page=True)


def test_the_search_uses_its_trigram_index_on_postgresql(postgres_url, default_pack):
    from sqlalchemy import func, select, text

    from monitor.cases.inbox import conditions
    from monitor.cases.schema import Ticket
    from tests.test_tickets import pg_schema_url

    store = SqlTicketStore(pg_schema_url(postgres_url))
    make_tickets(store, default_pack)
    query = select(func.count()).select_from(Ticket).where(
        *conditions(default_pack, TicketFilter.from_query({"q": "恒达建材", "status": "all"}), None, NOW))
    with store.engine.connect() as conn:
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        conn.execute(text("set enable_seqscan = off"))  # a small table: would the planner use the index at all?
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("explain " + sql.replace("%", "%%")))
        assert "ix_tickets_search" in plan, plan
        assert conn.exec_driver_sql(sql.replace("%", "%%")).scalar() == 9
