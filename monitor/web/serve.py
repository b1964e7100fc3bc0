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

    app = create_app(store, pack)            # uvicorn.run(app, ...)
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.middleware.sessions import SessionMiddleware

from monitor.cases.auth import SESSION_HOURS, User, UserStore
from monitor.core.rules import RulePack
from monitor.cases.tickets import SqlTicketStore, TicketError
from monitor.cases.workflow import OUTCOMES, WorkflowError

__all__ = ["create_app"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
LOGIN_WINDOW = 300.0  # seconds over which failed logins count
LOGIN_LIMIT = 5  # failed logins per username in the window, from anywhere
ADDRESS_LIMIT = 20  # failed logins per client address in the window, whatever the usernames
MAX_BODY_BYTES = 1 << 20
MAX_TEXT = 10_000  # characters of a comment or a reason
Text = Annotated[str, Field(max_length=MAX_TEXT)]
TicketId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]  # what the database's ids can hold
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

TEXT = {
    "zh": {"inbox": "我的待办", "overdue": "逾期工单", "ticket": "工单", "login": "登录", "logout": "退出", "user": "用户名",
           "password": "密码", "status": "状态", "risk": "风险", "severity": "等级", "org": "单位", "due": "处置时限",
           "owner": "责任岗位", "evidence": "证据", "audit": "处置记录", "actions": "处置", "reason": "理由", "outcome": "结论",
           "comment": "备注", "assign": "指派", "submit": "提交", "legal": "法律依据", "exports": "导出",
           "bad_login": "用户名或密码错误", "too_many": "尝试次数过多，请稍后再试", "none": "没有工单",
           "timeline": "事项时间线", "required": "必经审查", "at_issue": "问题环节", "who": "经办", "opinion": "意见"},
    "en": {"inbox": "My inbox", "overdue": "Overdue", "ticket": "Ticket", "login": "Log in", "logout": "Log out", "user": "Username",
           "password": "Password", "status": "Status", "risk": "Risk", "severity": "Severity", "org": "Org", "due": "Due",
           "owner": "Owner", "evidence": "Evidence", "audit": "Audit trail", "actions": "Actions", "reason": "Reason",
           "outcome": "Outcome", "comment": "Comment", "assign": "Assign", "submit": "Submit", "legal": "Legal basis",
           "exports": "Exports", "bad_login": "Wrong username or password", "too_many": "Too many attempts; try again later",
           "none": "No tickets", "timeline": "Matter timeline", "required": "Required steps", "at_issue": "At issue",
           "who": "Who", "opinion": "Opinion"},
}


def _timeline(control, ticket: dict, events: list[dict]) -> dict[str, Any]:
    """A review ticket's matter: its steps done, in time order, and the step at issue."""
    org, matter_id, mark = (ticket["dedup_key"].split("|") + ["", "", ""])[1:4]
    breach, _, step = mark.partition(":")
    required = [{"step": s.step, "post": s.post, "within_days": s.within / 86400 if s.within else None}
                for s in control.steps]
    rows = []
    for e in sorted(events, key=lambda e: str(e.get("occurred_at"))):
        a = e.get("attributes") or {}
        rows.append({"at": e.get("occurred_at"), "type": e.get("type"), "step": a.get("step"),
                     "who": a.get("reviewer_id") or a.get("drafter_id"), "post": a.get("reviewer_post"),
                     "opinion": a.get("opinion"), "opinion_no": a.get("opinion_no"), "amount": e.get("amount"),
                     "event_id": e.get("event_id")})
    return {"control": control.id, "title": control.title, "matter_id": matter_id, "breach": breach, "step": step,
            "required": required, "rows": rows}


class Move(BaseModel):
    to: str = Field(max_length=32)
    reason: Text | None = None
    outcome: str | None = Field(None, max_length=32)


class Assignment(BaseModel):
    assignee: str = Field(max_length=64)
    reason: Text | None = None


class Comment(BaseModel):
    text: Text


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


class _Failures:
    """Failed logins per key in a sliding window, holding at most ``max_keys`` keys."""

    def __init__(self, limit: int, window: float = LOGIN_WINDOW, max_keys: int = 100_000):
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self.recent: dict[str, deque] = {}

    def blocked(self, key: str, now: float) -> bool:
        recent = self.recent.get(key)
        while recent and now - recent[0] > self.window:
            recent.popleft()
        return bool(recent) and len(recent) >= self.limit

    def add(self, key: str, now: float) -> None:
        if key not in self.recent and len(self.recent) >= self.max_keys:
            for stale in [k for k, q in self.recent.items() if not q or now - q[-1] > self.window]:
                del self.recent[stale]
            if len(self.recent) >= self.max_keys:  # all recent: forget the oldest half
                for old in list(self.recent)[: self.max_keys // 2]:
                    del self.recent[old]
        self.recent.setdefault(key, deque()).append(now)


def create_app(store: SqlTicketStore, pack: RulePack, session_secret: str | None = None,
               clock=lambda: dt.datetime.now(dt.timezone.utc), metrics=None, secure_cookies: bool = False) -> FastAPI:
    users = UserStore(store.engine)
    app = FastAPI(title="riskwatch", description="Disposal tickets of the compliance risk monitor.", version="0.1.0",
                  docs_url=None, redoc_url=None, openapi_url=None)  # the description is behind a token: /api/openapi.json
    app.add_middleware(SessionMiddleware, secret_key=session_secret or secrets.token_urlsafe(32),
                       same_site="strict", https_only=secure_cookies, max_age=SESSION_HOURS * 3600)
    app.add_middleware(BodyLimit)
    failed_users, failed_addresses = _Failures(LOGIN_LIMIT), _Failures(ADDRESS_LIMIT)
    headers = dict(SECURITY_HEADERS)
    if secure_cookies:
        headers["Strict-Transport-Security"] = "max-age=31536000"

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    # --- who is asking --------------------------------------------------------------------
    def api_user(request: Request) -> User:
        header = request.headers.get("authorization", "")
        user = users.by_token(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if user is None:
            raise HTTPException(401, "a valid API token is required", headers={"WWW-Authenticate": "Bearer"})
        return user

    def page_user(request: Request) -> User | None:
        sid = request.session.get("sid")
        return users.session_user(sid) if isinstance(sid, str) else None

    def readable(user: User, ticket_id: int) -> dict[str, Any]:
        try:
            ticket = store.get(ticket_id)
        except TicketError:
            raise HTTPException(404, f"no ticket {ticket_id}") from None
        if not user.can_read(ticket):
            raise HTTPException(404, f"no ticket {ticket_id}")  # not 403: others' tickets do not exist for you
        return ticket

    def workable(user: User, ticket_id: int) -> dict[str, Any]:
        ticket = readable(user, ticket_id)
        if not user.can_act(ticket):
            raise HTTPException(403, "your role may read this ticket but not change it")
        return ticket

    def visible(user: User, rows: list[dict]) -> list[dict]:
        return [t for t in rows if user.can_read(t)]

    def detail(ticket: dict) -> dict[str, Any]:
        rule = next((r for r in [*pack.rules, *pack.detectors] if r.id == ticket["rule_id"]), None)
        control = next((c for c in pack.controls if c.id == ticket["rule_id"]), None)
        risk = pack.risks.get(ticket["risk_id"])
        events = store.evidence(ticket["dedup_key"])
        return {"ticket": ticket, "alert": ticket["alert"],
                "rule": {"id": rule.id, "title": rule.title, "when": rule.spec.when} if rule else None,
                "matter": _timeline(control, ticket, events) if control else None,
                "risk": {"id": risk.id, "title_zh": risk.title_zh, "title_en": risk.title_en,
                         "legal_basis": risk.legal_basis, "sla": {"acknowledge": risk.sla.acknowledge,
                                                                   "dispose": risk.sla.dispose}} if risk else None,
                "events": events, "audit": store.audit(ticket["id"])}

    def act(fn, *args):
        try:
            result = fn(*args)
        except (TicketError, WorkflowError) as err:
            raise HTTPException(409, str(err)) from err
        if metrics is not None and isinstance(result, dict) and result.get("status") == "closed" and fn == store.move:
            metrics.tickets_closed.labels(result["risk_id"], result["outcome"] or "none").inc()
        return result

    # --- API -------------------------------------------------------------------------------------
    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "rule_pack": pack.version}

    @app.get("/api/tickets")
    def list_tickets(status: str | None = None, risk: str | None = None, org: str | None = None,
                     overdue: bool = False, q: str | None = None, user: User = Depends(api_user)) -> list[dict]:
        rows = visible(user, store.find(status, risk, org, None, clock() if overdue else None))
        if q:
            rows = [t for t in rows if q.lower() in (t["title"] + " " + t["message"]).lower()]
        return [{k: v for k, v in t.items() if k != "alert"} for t in rows]

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(user: User = Depends(api_user)) -> dict:
        return app.openapi()

    @app.get("/api/tickets/{ticket_id}")
    def get_ticket(ticket_id: TicketId, user: User = Depends(api_user)) -> dict:
        return detail(readable(user, ticket_id))

    @app.post("/api/tickets/{ticket_id}/move")
    def move(ticket_id: TicketId, body: Move, user: User = Depends(api_user)) -> dict:
        workable(user, ticket_id)
        return act(store.move, ticket_id, body.to, user.username, clock(), body.reason, body.outcome)

    @app.post("/api/tickets/{ticket_id}/assign")
    def assign(ticket_id: TicketId, body: Assignment, user: User = Depends(api_user)) -> dict:
        ticket = workable(user, ticket_id)
        try:
            users.assignable(body.assignee, ticket)
        except ValueError as err:
            raise HTTPException(422, str(err)) from err
        return act(store.assign, ticket_id, body.assignee, user.username, clock(), body.reason)

    @app.post("/api/tickets/{ticket_id}/comments", status_code=201)
    def comment(ticket_id: TicketId, body: Comment, user: User = Depends(api_user)) -> dict:
        workable(user, ticket_id)
        act(store.comment, ticket_id, user.username, body.text, clock())
        return {"ok": True}

    @app.get("/api/exports/{kind}")
    def export(kind: str, format: str = "xlsx", user: User = Depends(api_user)):  # noqa: A002 - the query name
        return _export(kind, format, user)

    def _export(kind: str, fmt: str, user: User):
        from monitor.cases.exports import COLUMNS, write_export

        if kind not in COLUMNS or fmt not in ("csv", "xlsx"):
            raise HTTPException(404, "exports: violations, cases or tickets, as csv or xlsx")
        folder = Path(tempfile.mkdtemp(prefix="riskwatch-export-"))
        try:
            path = folder / f"{kind}.{fmt}"
            write_export(path, kind, visible(user, store.export_rows(kind)))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # removed once the file is sent
        return FileResponse(path, filename=path.name, background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))

    # --- pages -------------------------------------------------------------------------------------
    def render(request: Request, name: str, user: User | None, **context):
        lang = request.query_params.get("lang") or request.session.get("lang") or "zh"
        lang = lang if lang in TEXT else "zh"
        request.session["lang"] = lang
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(24)
        nonce = secrets.token_urlsafe(16)  # the page's one inline <style>
        response = TEMPLATES.TemplateResponse(request, name, {"t": TEXT[lang], "lang": lang, "user": user,
                                                              "csrf": request.session["csrf"], "nonce": nonce, **context})
        response.headers["Content-Security-Policy"] = headers["Content-Security-Policy"] + f"; style-src 'nonce-{nonce}'"
        return response

    def check_csrf(request: Request, token: str) -> None:
        expected = request.session.get("csrf")
        if not (isinstance(expected, str) and expected and token and hmac.compare_digest(token, expected)):
            raise HTTPException(403, "the form is stale or forged (CSRF); reload the page")

    def require(request: Request) -> User:
        user = page_user(request)
        if user is None:
            raise HTTPException(303, headers={"Location": "/login"})
        return user

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request):
        return render(request, "login.html", None, error=None)

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(request: Request, username: str = Form(..., max_length=64), password: str = Form(..., max_length=1024),
              csrf: str = Form("")):
        check_csrf(request, csrf)
        # The client's own address: proxy headers are trusted only from the
        # proxies named with riskwatch serve --forwarded-allow-ips.
        address = request.client.host if request.client else ""
        now = time.monotonic()
        if failed_users.blocked(username, now) or failed_addresses.blocked(address, now):
            response = render(request, "login.html", None, error="too_many")
            response.status_code = 429
            return response
        user = users.check_password(username, password)
        if user is None:
            failed_users.add(username, now)
            failed_addresses.add(address, now)
            response = render(request, "login.html", None, error="bad_login")
            response.status_code = 401
            return response
        old = request.session.get("sid")
        if isinstance(old, str):
            users.end_session(old)
        request.session.clear()
        request.session["sid"] = users.open_session(user.username)
        request.session["csrf"] = secrets.token_urlsafe(24)  # a new session, a new token
        return RedirectResponse("/", status_code=303)

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form("")):
        check_csrf(request, csrf)
        sid = request.session.get("sid")
        if isinstance(sid, str):
            users.end_session(sid)  # the cookie, wherever a copy of it is, opens nothing now
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def inbox(request: Request):
        user = require(request)
        rows = [t for t in visible(user, store.find()) if t["status"] not in ("resolved", "closed")
                and (user.role != "viewer")]
        return render(request, "list.html", user, title="inbox", tickets=rows, now=clock())

    @app.get("/overdue", response_class=HTMLResponse, include_in_schema=False)
    def overdue(request: Request):
        user = require(request)
        return render(request, "list.html", user, title="overdue", tickets=visible(user, store.find(overdue_at=clock())),
                      now=clock())

    @app.get("/tickets/{ticket_id}", response_class=HTMLResponse, include_in_schema=False)
    def ticket_page(request: Request, ticket_id: TicketId):
        user = require(request)
        info = detail(readable(user, ticket_id))
        return render(request, "ticket.html", user, can_act=user.can_act(info["ticket"]), outcomes=OUTCOMES, **info)

    @app.post("/tickets/{ticket_id}/move", include_in_schema=False)
    def move_form(request: Request, ticket_id: TicketId, to: str = Form(..., max_length=32),
                  reason: str = Form("", max_length=MAX_TEXT), outcome: str = Form("", max_length=32), csrf: str = Form("")):
        user = require(request)
        check_csrf(request, csrf)
        workable(user, ticket_id)
        act(store.move, ticket_id, to, user.username, clock(), reason or None, outcome or None)
        return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)

    @app.post("/tickets/{ticket_id}/comment", include_in_schema=False)
    def comment_form(request: Request, ticket_id: TicketId, text: str = Form(..., max_length=MAX_TEXT),
                     csrf: str = Form("")):
        user = require(request)
        check_csrf(request, csrf)
        workable(user, ticket_id)
        act(store.comment, ticket_id, user.username, text, clock())
        return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)

    @app.get("/exports/{kind}.{fmt}", include_in_schema=False)
    def export_page(request: Request, kind: str, fmt: str):
        return _export(kind, fmt, require(request))

    return app
