"""An accessibility pass over every page with axe-core, in Debian's Chromium: no serious or critical violations."""

from __future__ import annotations

import pytest

from monitor.cases.auth import UserStore
from monitor.cases.tickets import SqlTicketStore
from monitor.packs.rulefiles import default_rules_dir, load_orgs
from monitor.web.serve import create_app
from tests.test_inbox import NOW, make_tickets

SERIOUS = ("serious", "critical")


@pytest.fixture()
def app(tmp_path, default_pack):
    store = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    make_tickets(store, default_pack)
    UserStore(store.engine).add("head", "head-pass-123", "admin", [])  # an admin sees every page
    store.record_pack(default_pack, NOW)
    return create_app(store, default_pack, "s", lambda: NOW, orgs=load_orgs(default_rules_dir())[0],
                      rules_dir=default_rules_dir())


def serious(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
            for v in results.response["violations"] if v["impact"] in SERIOUS]


def test_no_page_has_a_serious_accessibility_violation(app):
    from tests.test_serve import SHOTS, browser_login, in_browser

    with in_browser(app) as (page, base):
        page.goto(f"{base}/login")
        found = {"/login": serious(page)}
        browser_login(page, base, "head", "head-pass-123")
        for path in ("/", "/inbox", "/inbox?grade=red&status=all", "/tickets/1", "/tickets/999999", "/lists/risks",
                     "/lists/duties", "/lists/controls", "/rules", "/rules/fin_payment_over_contract", "/violations",
                     "/cases", "/admin", "/?lang=en", "/inbox?lang=en", "/tickets/1?lang=en", "/lists/risks?lang=en"):
            page.goto(f"{base}{path}")
            found[path] = serious(page)
            if path in ("/lists/risks", "/rules/fin_payment_over_contract"):
                SHOTS.mkdir(exist_ok=True)
                page.screenshot(path=str(SHOTS / f"{path.strip('/').replace('/', '-')}.png"), full_page=True)
    assert {path: v for path, v in found.items() if v} == {}


def test_the_check_can_fail(app):
    """axe finds what it should: an image without a text alternative, a form field without a label."""
    from tests.test_serve import in_browser

    with in_browser(app) as (page, base):
        page.set_content('<html lang="en"><title>t</title><main><img src="x.png"><input type="text"></main></html>')
        assert any(v.startswith(("image-alt", "label")) for v in serious(page))
