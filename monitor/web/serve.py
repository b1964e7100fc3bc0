"""``riskwatch serve``: the REST API and the web UI for compliance managers.

One FastAPI app over the ticket store:

- ``/health`` — the only anonymous endpoint;
- ``/api/...`` — JSON, authenticated by ``Authorization: Bearer <token>``
  (``riskwatch users token NAME``); OpenAPI at ``/docs``;
- the web pages — server-rendered (Jinja2, autoescaped), Chinese by default
  (``?lang=en`` for English), signed session cookies after a username and
  password login, a CSRF token on every form, and login attempts limited per
  user and address.

Every ticket read or change goes through the user's role (``monitor.cases.auth``):
an officer sees and works the tickets of their departments only.

    app = create_app(store, pack)            # uvicorn.run(app, ...)
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from starlette.middleware.sessions import SessionMiddleware

from monitor.cases.auth import User, UserStore
from monitor.core.rules import RulePack
from monitor.cases.tickets import SqlTicketStore, TicketError
from monitor.cases.workflow import OUTCOMES, WorkflowError

__all__ = ["create_app"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
LOGIN_LIMIT, LOGIN_WINDOW = 5, 300.0  # failed logins per user and address, per five minutes

TEXT = {
    "zh": {"inbox": "我的待办", "overdue": "逾期工单", "ticket": "工单", "login": "登录", "logout": "退出", "user": "用户名",
           "password": "密码", "status": "状态", "risk": "风险", "severity": "等级", "org": "单位", "due": "处置时限",
           "owner": "责任岗位", "evidence": "证据", "audit": "处置记录", "actions": "处置", "reason": "理由", "outcome": "结论",
           "comment": "备注", "assign": "指派", "submit": "提交", "legal": "法律依据", "exports": "导出",
           "bad_login": "用户名或密码错误", "too_many": "尝试次数过多，请稍后再试", "none": "没有工单"},
    "en": {"inbox": "My inbox", "overdue": "Overdue", "ticket": "Ticket", "login": "Log in", "logout": "Log out", "user": "Username",
           "password": "Password", "status": "Status", "risk": "Risk", "severity": "Severity", "org": "Org", "due": "Due",
           "owner": "Owner", "evidence": "Evidence", "audit": "Audit trail", "actions": "Actions", "reason": "Reason",
           "outcome": "Outcome", "comment": "Comment", "assign": "Assign", "submit": "Submit", "legal": "Legal basis",
           "exports": "Exports", "bad_login": "Wrong username or password", "too_many": "Too many attempts; try again later",
           "none": "No tickets"},
}


class Move(BaseModel):
    to: str
    reason: str | None = None
    outcome: str | None = None


class Assignment(BaseModel):
    assignee: str
    reason: str | None = None


class Comment(BaseModel):
    text: str


def create_app(store: SqlTicketStore, pack: RulePack, session_secret: str | None = None,
               clock=lambda: dt.datetime.now(dt.timezone.utc), metrics=None) -> FastAPI:
    users = UserStore(store.engine)
    app = FastAPI(title="riskwatch", description="Disposal tickets of the compliance risk monitor.", version="0.1.0")
    app.add_middleware(SessionMiddleware, secret_key=session_secret or secrets.token_urlsafe(32),
                       same_site="strict", https_only=False, max_age=8 * 3600)
    failures: dict[tuple[str, str], deque] = defaultdict(deque)

    # --- who is asking --------------------------------------------------------------------
    def api_user(request: Request) -> User:
        header = request.headers.get("authorization", "")
        user = users.by_token(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if user is None:
            raise HTTPException(401, "a valid API token is required", headers={"WWW-Authenticate": "Bearer"})
        return user

    def page_user(request: Request) -> User | None:
        name = request.session.get("user")
        return users.get(name) if name else None

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
        risk = pack.risks.get(ticket["risk_id"])
        return {"ticket": ticket, "alert": ticket["alert"],
                "rule": {"id": rule.id, "title": rule.title, "when": rule.spec.when} if rule else None,
                "risk": {"id": risk.id, "title_zh": risk.title_zh, "title_en": risk.title_en,
                         "legal_basis": risk.legal_basis, "sla": {"acknowledge": risk.sla.acknowledge,
                                                                   "dispose": risk.sla.dispose}} if risk else None,
                "events": store.evidence(ticket["dedup_key"]), "audit": store.audit(ticket["id"])}

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

    @app.get("/api/tickets/{ticket_id}")
    def get_ticket(ticket_id: int, user: User = Depends(api_user)) -> dict:
        return detail(readable(user, ticket_id))

    @app.post("/api/tickets/{ticket_id}/move")
    def move(ticket_id: int, body: Move, user: User = Depends(api_user)) -> dict:
        workable(user, ticket_id)
        return act(store.move, ticket_id, body.to, user.username, clock(), body.reason, body.outcome)

    @app.post("/api/tickets/{ticket_id}/assign")
    def assign(ticket_id: int, body: Assignment, user: User = Depends(api_user)) -> dict:
        workable(user, ticket_id)
        return act(store.assign, ticket_id, body.assignee, user.username, clock(), body.reason)

    @app.post("/api/tickets/{ticket_id}/comments", status_code=201)
    def comment(ticket_id: int, body: Comment, user: User = Depends(api_user)) -> dict:
        workable(user, ticket_id)
        act(store.comment, ticket_id, user.username, body.text, clock())
        return {"ok": True}

    @app.get("/api/exports/{kind}")
    def export(kind: str, format: str = "xlsx", user: User = Depends(api_user)):  # noqa: A002 - the query name
        return _export(kind, format, user)

    def _export(kind: str, fmt: str, user: User):
        import tempfile

        from monitor.cases.exports import COLUMNS, write_export

        if kind not in COLUMNS or fmt not in ("csv", "xlsx"):
            raise HTTPException(404, "exports: violations, cases or tickets, as csv or xlsx")
        path = Path(tempfile.mkdtemp()) / f"{kind}.{fmt}"
        write_export(path, kind, visible(user, store.export_rows(kind)))
        return FileResponse(path, filename=path.name)

    # --- pages -------------------------------------------------------------------------------------
    def render(request: Request, name: str, user: User | None, **context):
        lang = request.query_params.get("lang") or request.session.get("lang") or "zh"
        lang = lang if lang in TEXT else "zh"
        request.session["lang"] = lang
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(24)
        return TEMPLATES.TemplateResponse(request, name, {"t": TEXT[lang], "lang": lang, "user": user,
                                                          "csrf": request.session["csrf"], **context})

    def check_csrf(request: Request, token: str) -> None:
        if not hmac.compare_digest(token or "", request.session.get("csrf", "") or "x"):
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
    def login(request: Request, username: str = Form(...), password: str = Form(...), csrf: str = Form("")):
        check_csrf(request, csrf)
        key = (username, request.client.host if request.client else "")
        recent = failures[key]
        now = time.monotonic()
        while recent and now - recent[0] > LOGIN_WINDOW:
            recent.popleft()
        if len(recent) >= LOGIN_LIMIT:
            response = render(request, "login.html", None, error="too_many")
            response.status_code = 429
            return response
        user = users.check_password(username, password)
        if user is None:
            recent.append(now)
            response = render(request, "login.html", None, error="bad_login")
            response.status_code = 401
            return response
        recent.clear()
        request.session.clear()
        request.session["user"] = user.username
        request.session["csrf"] = secrets.token_urlsafe(24)  # a new session, a new token
        return RedirectResponse("/", status_code=303)

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form("")):
        check_csrf(request, csrf)
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
    def ticket_page(request: Request, ticket_id: int):
        user = require(request)
        info = detail(readable(user, ticket_id))
        return render(request, "ticket.html", user, can_act=user.can_act(info["ticket"]), outcomes=OUTCOMES, **info)

    @app.post("/tickets/{ticket_id}/move", include_in_schema=False)
    def move_form(request: Request, ticket_id: int, to: str = Form(...), reason: str = Form(""), outcome: str = Form(""),
                  csrf: str = Form("")):
        user = require(request)
        check_csrf(request, csrf)
        workable(user, ticket_id)
        act(store.move, ticket_id, to, user.username, clock(), reason or None, outcome or None)
        return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)

    @app.post("/tickets/{ticket_id}/comment", include_in_schema=False)
    def comment_form(request: Request, ticket_id: int, text: str = Form(...), csrf: str = Form("")):
        user = require(request)
        check_csrf(request, csrf)
        workable(user, ticket_id)
        act(store.comment, ticket_id, user.username, text, clock())
        return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)

    @app.get("/exports/{kind}.{fmt}", include_in_schema=False)
    def export_page(request: Request, kind: str, fmt: str):
        return _export(kind, fmt, require(request))

    return app
