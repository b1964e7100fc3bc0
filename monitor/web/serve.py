"""``riskwatch serve``: the REST API and the web UI for compliance managers.

One FastAPI app over the ticket store:

- ``/health`` — the only anonymous endpoint;
- ``/api/...`` — JSON, authenticated by ``Authorization: Bearer <token>``
  (``riskwatch users token NAME``; tokens expire and can be revoked); the
  OpenAPI description at ``/api/openapi.json``, with a token too;
- the web pages — server-rendered (Jinja2, autoescaped), Chinese by default
  (``?lang=en`` for English), after a username and password login: a signed
  cookie carries a random session id whose row logout deletes, a CSRF token
  on every form (login included), and failed logins limited per user and
  per address.

Every answer carries a Content-Security-Policy (no script at all, styles by
nonce), ``X-Frame-Options: DENY`` and ``X-Content-Type-Options: nosniff``;
``secure_cookies`` (``riskwatch serve --secure-cookies``, behind TLS) marks
the cookie Secure and adds HSTS. Request bodies are capped at 1 MiB, texts
(comments, reasons) at 10,000 characters.

Every ticket read or change goes through the user's role (``monitor.cases.auth``):
an officer sees and works the tickets of their departments only.

    app = create_app(store, pack, orgs=load_orgs(rules_dir)[0])     # uvicorn.run(app, ...)

The app factory only mounts: each page is a router in ``monitor/web/pages/``
(login, cockpit, inbox, ticket, lists, rules, records, admin), the API is ``monitor/web/api.py``, downloads
``monitor/web/exports.py``, and who may see what is ``monitor/web/site.py``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from monitor.cases.auth import SESSION_HOURS
from monitor.cases.tickets import SqlTicketStore
from monitor.core.rules import RulePack
from monitor.packs.orgs import OrgDirectory
from monitor.web import api
from monitor.web.pages import admin, cockpit, inbox, lists, login, records, rules, ticket
from monitor.web.i18n import MESSAGES, pick_lang
from monitor.web.site import MAX_TEXT, SECURITY_HEADERS, Site

__all__ = ["MAX_BODY_BYTES", "MAX_TEXT", "create_app"]

MAX_BODY_BYTES = 1 << 20
PAGE_ERRORS = {404: "not_found", 403: "not_allowed", 405: "conflict", 409: "conflict", 413: "conflict", 422: "conflict"}


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (413), whether or not they say
    their length: JSON bodies have no other bound."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(scope, send)
        seen = 0
        started = refused = False

        async def counted():
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes and not refused:
                refused = True
                if not started:
                    await self._refuse(scope, send)
                return {"type": "http.disconnect"}  # the app stops reading; its answer is not sent
            return message

        async def tracked(message):
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, tracked)

    async def _refuse(self, scope, send):
        response = JSONResponse({"detail": f"the request body is over {self.max_bytes:,} bytes"}, status_code=413,
                                headers=SECURITY_HEADERS)
        await response(scope, None, send)


def create_app(store: SqlTicketStore, pack: RulePack, session_secret: str | None = None,
               clock=lambda: dt.datetime.now(dt.timezone.utc), metrics=None, secure_cookies: bool = False,
               orgs: OrgDirectory | None = None, rules_dir: Path | None = None) -> FastAPI:
    app = FastAPI(title="riskwatch", description="Disposal tickets of the compliance risk monitor.", version="0.1.0",
                  docs_url=None, redoc_url=None, openapi_url=None)  # the description is behind a token: /api/openapi.json
    app.state.site = web = Site(store, pack, clock, metrics, secure_cookies, orgs, rules_dir)
    app.add_middleware(SessionMiddleware, secret_key=session_secret or secrets.token_urlsafe(32),
                       same_site="strict", https_only=secure_cookies, max_age=SESSION_HOURS * 3600)
    app.add_middleware(BodyLimit)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in web.headers.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def errors(request: Request, exc: StarletteHTTPException):
        """The API answers JSON; a page answers a page, in the user's language."""
        if request.url.path.startswith("/api/") or exc.status_code in (301, 302, 303, 307, 308) \
                or request.method not in ("GET", "POST"):
            return await http_exception_handler(request, exc)
        key = "stale_form" if "CSRF" in str(exc.detail) else PAGE_ERRORS.get(exc.status_code, "conflict")
        lang = pick_lang(request.query_params.get("lang"), request.session.get("lang"))
        return web.render(request, "error.html", web.page_user(request), status_code=exc.status_code,
                          status=exc.status_code, message=MESSAGES[lang][key],
                          detail=exc.detail if key == "conflict" else None)

    for module in (api, login, cockpit, inbox, ticket, lists, rules, records, admin):
        app.include_router(module.router)
    return app
