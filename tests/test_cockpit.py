"""The cockpit: its figures on SQLite and PostgreSQL, its scope, and its drill-down in Chromium."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from monitor.cases.cockpit import MAX_COLUMNS, OTHERS, CockpitQuery, cockpit
from monitor.cases.schema import MatterReview
from monitor.packs.orgs import Org, OrgDirectory
from monitor.packs.rulefiles import default_rules_dir, load_orgs
from monitor.web.serve import create_app
from tests.test_inbox import NOW, found, tickets  # noqa: F401 - the fixture: 90 tickets
from tests.test_serve import login
from tests.test_tickets import database_url  # noqa: F401

ORGS = load_orgs(default_rules_dir())[0]
PERIOD = CockpitQuery("JCGROUP", dt.date(2026, 11, 1), dt.date(2026, 11, 30))


def test_the_heat_map_counts_open_tickets_by_risk_and_subsidiary(tickets, default_pack):  # noqa: F811
    view = cockpit(tickets.engine, default_pack, ORGS, PERIOD, None, NOW)
    assert view.open_total == 90 and view.overdue_total == 0
    assert view.by_grade == {"yellow": 60, "red": 24, "blue": 6}
    assert view.heat["FIN-01"]["SUB01"] == {"open": 20, "weight": 40, "overdue": 0, "grade": "yellow"}
    assert view.heat["OVS-03"]["SUB12"] == {"open": 4, "weight": 16, "overdue": 0, "grade": "red"}
    assert set(view.columns) == {"SUB01", "SUB02", "SUB03", "SUB04", "SUB05", "SUB06", "SUB12"}
    assert view.top_risks[0] == ("FIN-01", 60) and view.top_rules[0] == ("fin_payment_without_contract", 60)
    assert {p["post"]: p["open"] for p in view.posts}["finance_compliance_officer"] == 66
    monday = dt.date(2026, 11, 23)
    assert view.opened["finance"][monday] == 66 and view.opened["contract"][monday] == 20
    assert monday in view.weeks and view.weeks[0] == dt.date(2026, 10, 26)


def test_closing_and_overdue_show_in_the_trend_sla_and_posts(tickets, default_pack):  # noqa: F811
    ids = [t["id"] for t in found(tickets, default_pack, risk="CON-01", per_page=5)[1]]
    for i in ids[:3]:
        tickets.move(i, "resolved", "head", NOW, "done", "remediated")
        tickets.move(i, "closed", "head", NOW)
    later = NOW + dt.timedelta(days=30)  # every open ticket is past due then
    view = cockpit(tickets.engine, default_pack, ORGS, PERIOD, None, later)
    assert view.closed["contract"][dt.date(2026, 11, 23)] == 3
    assert found(tickets, default_pack, status="closed", closed_from="2026-11-23", closed_to="2026-11-29")[0] == 3
    assert found(tickets, default_pack, status="closed", closed_from="2026-11-30")[0] == 0  # what the bar links to
    assert view.sla == {"resolved": 3, "within": 3, "share": 1.0}
    assert view.open_total == 87 and view.overdue_total == 87
    assert {p["post"]: p["overdue"] for p in view.posts}["legal_compliance_officer"] == 17


def test_an_org_shows_its_subtree_and_an_officer_her_departments(tickets, default_pack):  # noqa: F811
    one = cockpit(tickets.engine, default_pack, ORGS, CockpitQuery("SUB01", PERIOD.start, PERIOD.end), None, NOW)
    assert one.open_total == 20 and one.columns == ["SUB01"]
    legal = cockpit(tickets.engine, default_pack, ORGS, PERIOD, ("法律合规部",), NOW)
    assert legal.open_total == 20 and set(legal.heat) == {"CON-01"}


def test_orgs_outside_the_directory_count_in_the_groups_own_column(tickets, default_pack):  # noqa: F811
    small = OrgDirectory([Org(id="G", name="集团"), Org(id="SUB01", name="甲", parent="G"),
                          Org(id="SUB02", name="乙", parent="G")])
    view = cockpit(tickets.engine, default_pack, small, CockpitQuery("G", PERIOD.start, PERIOD.end), None, NOW)
    assert view.open_total == 90 and view.columns == ["G", "SUB01", "SUB02"]  # by weight: G holds SUB03... now
    assert sum(c["open"] for c in (view.heat[r].get("G") for r in view.heat) if c) == 50
    sub = cockpit(tickets.engine, default_pack, small, CockpitQuery("SUB01", PERIOD.start, PERIOD.end), None, NOW)
    assert sub.open_total == 20  # below the root, only the org's own subtree


def test_many_subsidiaries_fold_into_an_others_column(tickets, default_pack):  # noqa: F811
    from monitor.core.alerts import AlertBook
    from monitor.core.findings import Finding

    orgs = [f"C{i:03d}" for i in range(40)]
    alerts = AlertBook(default_pack).merge([Finding("fin_payment_without_contract", (org, f"P{n}"), [f"{org}-{n}"], 1.0,
                                                    2.0, {"org_id": org}) for i, org in enumerate(orgs)
                                            for n in range(i % 3 + 1)])
    tickets.upsert(alerts, default_pack, NOW)
    many = OrgDirectory([Org(id="G", name="集团"), *(Org(id=o, name=o, parent="G") for o in orgs)])
    view = cockpit(tickets.engine, default_pack, many, CockpitQuery("G", PERIOD.start, PERIOD.end), None, NOW)
    assert len(view.columns) == MAX_COLUMNS and view.columns[-1] == OTHERS
    shown = sum(cell["open"] for row in view.heat.values() for cell in row.values())
    assert shown == view.open_total == len(alerts) + 90  # nothing is lost in the fold (SUB01... are the group's own)
    assert view.columns[0] == "G" and view.heat["FIN-01"][view.columns[1]]["open"] == 3  # the heaviest first


def test_the_review_rate_is_over_the_period(tickets, default_pack):  # noqa: F811
    with Session(tickets.engine) as session, session.begin():
        for n, reviewed in enumerate([True, True, False]):
            session.add(MatterReview(control_id="RC-CON-01", org_id="SUB01", matter_id=f"HT{n}", matter_kind="contract",
                                     month="2026-11", executed_at=NOW, reviewed=reviewed))
        session.add(MatterReview(control_id="RC-CON-01", org_id="SUB01", matter_id="HTold", matter_kind="contract",
                                 month="2026-01", executed_at=NOW, reviewed=False))
    view = cockpit(tickets.engine, default_pack, ORGS, PERIOD, None, NOW)
    assert view.review == [{"kind": "contract", "reviewed": 2, "executed": 3, "rate": 2 / 3}]


def test_the_page_links_every_cell_to_its_filtered_inbox(tickets, default_pack):  # noqa: F811
    client = TestClient(create_app(tickets, default_pack, "s", lambda: NOW, orgs=ORGS))
    login(client, "head", "head-pass-123")
    html = client.get("/").text
    assert 'href="/inbox?org=SUB12&amp;risk=OVS-03"' in html and "江城控股集团有限公司" in html
    assert re.search(r'id="tile-red"><span class="big"><span class="grade grade-red">24<', html)
    inbox = client.get("/inbox", params={"org": "SUB12", "risk": "OVS-03"}).text
    assert 'id="total">(4)' in inbox


def test_the_heat_map_drills_down_to_the_right_inbox_in_a_real_browser(tickets, default_pack):  # noqa: F811
    from tests.test_serve import SHOTS, browser_login, in_browser

    app = create_app(tickets, default_pack, "s", lambda: NOW, orgs=ORGS)
    with in_browser(app) as (page, base):
        browser_login(page, base, "head", "head-pass-123")
        assert page.inner_text("h1").startswith("驾驶舱")
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "cockpit.png"), full_page=True)
        cell = page.locator("#heat a[href='/inbox?org=SUB02&risk=FIN-01']")
        count = cell.inner_text()
        cell.click()
        page.wait_for_url("**/inbox?*")
        assert page.inner_text("#total") == f"({count})" and count == "20"
        orgs = set(page.locator("#tickets tbody tr td:nth-child(7)").all_inner_texts())
        assert orgs == {"江城能源发展有限公司"}
        page.goto(f"{base}/")
        page.select_option("select[name=org]", "SUB12")
        page.click("#show")
        assert page.inner_text("#tile-open") .startswith("4")
