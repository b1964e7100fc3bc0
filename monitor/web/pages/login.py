"""Log in and out: a session whose row logout deletes, failed logins limited per user and per address."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from monitor.web.site import Site, site

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, web: Site = Depends(site)):
    return web.render(request, "login.html", None, error=None)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: str = Form(..., max_length=64), password: str = Form(..., max_length=1024),
          csrf: str = Form(""), web: Site = Depends(site)):
    web.check_csrf(request, csrf)
    # The client's own address: proxy headers are trusted only from the
    # proxies named with riskwatch serve --forwarded-allow-ips.
    address = request.client.host if request.client else ""
    now = time.monotonic()
    if web.failed_users.blocked(username, now) or web.failed_addresses.blocked(address, now):
        return web.render(request, "login.html", None, status_code=429, error="too_many")
    user = web.users.check_password(username, password)
    if user is None:
        web.failed_users.add(username, now)
        web.failed_addresses.add(address, now)
        return web.render(request, "login.html", None, status_code=401, error="bad_login")
    old = request.session.get("sid")
    if isinstance(old, str):
        web.users.end_session(old)
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang
    request.session["sid"] = web.users.open_session(user.username)
    request.session["csrf"] = secrets.token_urlsafe(24)  # a new session, a new token
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: str = Form(""), web: Site = Depends(site)):
    web.check_csrf(request, csrf)
    sid = request.session.get("sid")
    if isinstance(sid, str):
        web.users.end_session(sid)  # the cookie, wherever a copy of it is, opens nothing now
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
