"""Administration in the web UI: only admins, every change in its audit trail, and in a real
browser an admin adds a user who then logs in."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from monitor.cases.auth import UserStore
from monitor.cases.tickets import SqlTicketStore
from monitor.web.serve import create_app
from tests.test_serve import NOW, XSS, auth, login


@pytest.fixture()
def site(tmp_path, default_pack):
    store = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    users = UserStore(store.engine)
    users.add("root", "admin-pass-123", "admin", [])
    users.add("head", "head-pass-123", "head", [])
    users.add("wang.fang", "finance-pass-1", "officer", ["财务资金部"])
    return create_app(store, default_pack, "s", lambda: NOW), users


def csrf_of(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/admin").text).group(1)


@pytest.fixture()
def root(site):
    app, _ = site
    client = TestClient(app)
    login(client, "root", "admin-pass-123")
    return client


@pytest.mark.parametrize("who", [("head", "head-pass-123"), ("wang.fang", "finance-pass-1")])
def test_only_admins_reach_administration(site, who):
    app, users = site
    client = TestClient(app)
    assert client.get("/admin", follow_redirects=False).headers["location"] == "/login"
    login(client, *who)
    assert client.get("/admin").status_code == 403
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/inbox").text).group(1)
    r = client.post("/admin/users", data={"username": "mole", "password": "mole-pass-123", "role": "admin", "csrf": csrf})
    assert r.status_code == 403 and users.get("mole") is None
    r = client.post(f"/admin/users/{who[0]}", data={"role": "admin", "csrf": csrf})
    assert r.status_code == 403 and users.get(who[0]).role != "admin"
    assert "/admin" not in client.get("/").text  # not even the link


def test_an_admin_adds_changes_and_resets_users_each_in_the_audit_trail(root, site):
    _, users = site
    csrf = csrf_of(root)
    r = root.post("/admin/users", data={"username": "li.na", "password": "legal-pass-123", "role": "officer",
                                        "department": ["法律合规部"], "display_name": "李娜", "csrf": csrf},
                  follow_redirects=False)
    assert r.status_code == 303 and users.get("li.na").departments == ("法律合规部",)
    assert root.post("/admin/users", data={"username": "li.na", "password": "legal-pass-123", "role": "officer",
                                           "csrf": csrf}).status_code == 409
    assert root.post("/admin/users", data={"username": "x", "password": "short", "role": "officer",
                                           "csrf": csrf}).status_code == 422
    assert root.post("/admin/users", data={"username": "a b<", "password": "long-enough-1", "role": "officer",
                                           "csrf": csrf}).status_code == 422
    her = TestClient(root.app)
    assert login(her, "li.na", "legal-pass-123").status_code == 303
    root.post("/admin/users/li.na", data={"role": "head", "department": [], "display_name": "李娜", "csrf": csrf})
    assert users.get("li.na").role == "head" and her.get("/", follow_redirects=False).status_code == 200
    root.post("/admin/users/li.na/password", data={"password": "a-new-pass-456", "csrf": csrf})
    assert her.get("/", follow_redirects=False).headers["location"] == "/login"  # her sessions ended
    assert login(TestClient(root.app), "li.na", "a-new-pass-456").status_code == 303
    r = root.post("/admin/users/root", data={"role": "viewer", "csrf": csrf})
    assert r.status_code == 422 and users.get("root").role == "admin"
    trail = [(a["actor"], a["action"], a["target"]) for a in users.admin_audit()]
    assert trail == [("root", "reset_password", "li.na"), ("root", "change_user", "li.na"), ("root", "add_user", "li.na")]
    assert users.admin_audit()[1]["detail"] == {"role": ["officer", "head"], "departments": [["法律合规部"], []]}
    assert "重置密码" in root.get("/admin").text


def test_tokens_are_shown_once_and_revoked(root, site):
    _, users = site
    csrf = csrf_of(root)
    page = root.post("/admin/users/head/tokens", data={"label": "bi", "days": "30", "csrf": csrf}).text
    token = re.search(r'<code id="token-value">(rw_[^<]+)</code>', page).group(1)
    api = TestClient(root.app)
    assert api.get("/api/tickets", headers=auth(token)).status_code == 200
    assert token not in root.get("/admin").text  # only the once
    root.post("/admin/users/head/tokens/revoke", data={"label": "bi", "csrf": csrf})
    assert api.get("/api/tickets", headers=auth(token)).status_code == 401
    assert [a["action"] for a in users.admin_audit()[:2]] == ["revoke_tokens", "new_token"]
    assert root.post("/admin/users/head/tokens", data={"days": "9999", "csrf": csrf}).status_code == 422


def test_forms_need_the_token_and_names_are_escaped(root, site):
    _, users = site
    assert root.post("/admin/users", data={"username": "z", "password": "long-enough-1", "role": "officer",
                                           "csrf": "forged"}).status_code == 403
    root.post("/admin/users/head", data={"role": "head", "display_name": XSS, "csrf": csrf_of(root)})
    html = root.get("/admin").text
    assert "<script>document.title" not in html and "&lt;script&gt;" in html


def test_an_admin_adds_a_user_who_logs_in_in_a_real_browser(site):
    from tests.test_serve import SHOTS, browser_login, in_browser

    app, users = site
    with in_browser(app) as (page, base):
        browser_login(page, base, "root", "admin-pass-123")
        page.click("header a[href='/admin']")
        page.fill("#add-user input[name=username]", "zhao.lei")
        page.fill("#add-user input[name=display_name]", "赵磊")
        page.fill("#add-user input[name=password]", "procure-pass-1")
        page.select_option("#add-user select[name=role]", "officer")
        page.check("#add-user input[value='采购管理部']")
        page.click("#add-user-button")
        assert "新增用户" in page.inner_text("#done") and "赵磊" in page.inner_text("#user-zhao\\.lei")
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "admin.png"), full_page=True)
        page.click("header button")  # log out
        browser_login(page, base, "zhao.lei", "procure-pass-1")
        assert "zhao.lei (合规管理员)" in page.inner_text("header")
    assert users.get("zhao.lei").departments == ("采购管理部",)
