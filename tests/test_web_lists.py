"""The three lists, the rules (read-only, as written, with their tickets and history), the
violation record and the typical cases in the web UI."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from monitor.packs.rulefiles import default_rules_dir, load_orgs
from monitor.web.serve import create_app
from tests.test_inbox import NOW, english_values_shown, found, tickets  # noqa: F401 - the fixture
from tests.test_serve import XSS, login
from tests.test_tickets import database_url  # noqa: F401


@pytest.fixture()
def web(tickets, default_pack):  # noqa: F811
    tickets.record_pack(default_pack, NOW)
    client = TestClient(create_app(tickets, default_pack, "s", lambda: NOW, orgs=load_orgs(default_rules_dir())[0],
                                   rules_dir=default_rules_dir()))
    login(client, "head", "head-pass-123")
    return client


def row(html: str, row_id: str) -> str:
    return re.search(rf'<tr id="{re.escape(row_id)}">(.*?)</tr>', html, re.S).group(1)


def test_the_risk_list_shows_each_risks_rules_coverage_and_tickets(web):
    html = web.get("/lists/risks").text
    fin = row(html, "risk-FIN-01")
    assert 'href="/rules/fin_payment_without_contract"' in fin and "已覆盖" in fin
    assert '<a href="/inbox?risk=FIN-01&amp;status=all">60</a>' in fin
    assert "未覆盖" in row(html, "risk-PROC-03")  # a coverage gap: no live rule watches it
    assert "《中华人民共和国招标投标法》第四条" in row(html, "risk-PROC-01")


def test_the_duty_list_shows_each_posts_duties_and_open_work(web):
    html = web.get("/lists/duties").text
    finance = row(html, "post-finance_compliance_officer")
    assert "审核资金支付的合同依据与审批权限" in finance and '<a href="/inbox?post=finance_compliance_officer">66</a>' in finance


def test_the_control_list_shows_each_controls_steps(web):
    html = web.get("/lists/controls").text
    contract = row(html, "control-RC-CON-01")
    assert "legal_review" in contract and "法律合规部合规管理员" in contract and "经济合同" in contract


def test_a_rule_page_shows_it_as_written_with_its_tests_hits_and_tickets(web):
    html = web.get("/rules/fin_payment_without_contract").text
    source = re.search(r'<pre class="yaml" id="source"[^>]*>(.*?)</pre>', html, re.S).group(1)
    assert source.splitlines()[0] == "# Money leaves without a contract behind it."
    assert "- rule: fin_payment_without_contract" in source and "tests:" in source and "just under the limit" in source
    assert "fin_payment_over_contract" not in source  # the next rule is its own
    assert "<title>2026-11-23: 60</title>" in html and 'id="rule-tickets">工单总数 60<' in html
    assert web.get("/rules/RC-CON-01").status_code == 200 and web.get("/rules/det_amount_outlier").status_code == 200
    assert web.get("/rules/no_such_rule").status_code == 404


def test_the_rules_index_lists_every_entry_its_file_and_the_pack_versions(web, default_pack):
    html = web.get("/rules").text
    assert "finance.yaml:6" in html and "RC-CON-01" in html and "det_benford_payments" in html
    assert f"<code>{default_pack.version}</code>" in html


def test_the_violation_record_and_typical_cases_are_browsable(web, tickets, default_pack):  # noqa: F811
    ids = [t["id"] for t in found(tickets, default_pack, risk="CON-01", per_page=3)[1]]
    for i in ids:
        tickets.move(i, "resolved", "head", NOW, "确认", "confirmed_violation")
    tickets.move(ids[0], "closed", "head", NOW)
    tickets.mark_typical(ids[0], "head", XSS, NOW)
    violations = web.get("/violations").text
    assert 'id="total">(3)' in violations and violations.count("确认违规") == 3
    cases = web.get("/cases").text
    assert 'id="total">(1)' in cases and "&lt;script&gt;" in cases and "<script>document" not in cases
    assert 'href="/exports/cases.xlsx"' in cases and web.get("/exports/cases.xlsx").status_code == 200


@pytest.mark.parametrize("path", ["/lists/risks", "/lists/duties", "/lists/controls", "/rules",
                                  "/rules/fin_payment_without_contract", "/violations", "/cases"])
def test_these_pages_speak_chinese_and_english(web, path):
    assert english_values_shown(web.get(path).text) == set()
    assert web.get(path, params={"lang": "en"}).status_code == 200
    anonymous = TestClient(web.app)
    assert anonymous.get(path, follow_redirects=False).headers["location"] == "/login"


def test_a_closed_ticket_is_marked_a_typical_case_from_its_page(web, tickets, default_pack):  # noqa: F811
    ticket = found(tickets, default_pack, risk="FIN-01", per_page=1)[1][0]["id"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get(f"/tickets/{ticket}").text).group(1)
    assert 'id="typical-form"' not in web.get(f"/tickets/{ticket}").text  # only once closed
    for to, extra in (("resolved", {"outcome": "remediated"}), ("closed", {})):
        web.post(f"/tickets/{ticket}/move", data={"to": to, "csrf": csrf, **extra})
    page = web.post(f"/tickets/{ticket}/typical", data={"summary": "化整为零的典型手法", "csrf": csrf}).text
    assert 'id="typical"' in page and "化整为零的典型手法" in page and "列为典型案例" in page
    assert 'id="total">(1)' in web.get("/cases").text
    assert web.post(f"/tickets/{ticket}/typical", data={"summary": "x", "csrf": "forged"}).status_code == 403
