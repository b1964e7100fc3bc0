"""Who may see what, and how a page is drawn: the one place every router asks.

``Site`` holds the ticket store, the rule pack, the users and the clock; a
router gets it with ``Depends(site)``. Its checks are the only ones:

- ``api_user`` (a bearer token) and ``page_user``/``require`` (a session);
- ``readable``/``workable``: an officer's tickets are those of their
  departments, others' do not exist for them (404); a viewer acts on nothing (403);
- ``check_csrf``: every form carries the session's token;
- ``render``: a page in the user's language (``?lang=``, then the session),
  with the message catalogue, the names of orgs, a CSP nonce for its one style block.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections import deque
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import HTTPException, Request
from fastapi import Path as PathParam
from fastapi.templating import Jinja2Templates
from pydantic import Field

from monitor.cases.auth import User, UserStore
from monitor.cases.tickets import SqlTicketStore, TicketError
from monitor.cases.workflow import WorkflowError
from monitor.core.rules import RulePack
from monitor.packs.orgs import OrgDirectory
from monitor.web.i18n import MESSAGES, grade_of, in_lang, label, pick_lang

__all__ = ["MAX_TEXT", "SECURITY_HEADERS", "Site", "Text", "TicketId", "site"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
LOGIN_WINDOW = 300.0  # seconds over which failed logins count
LOGIN_LIMIT = 5  # failed logins per username in the window, from anywhere
ADDRESS_LIMIT = 20  # failed logins per client address in the window, whatever the usernames
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


class Failures:
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


class Site:
    """The web app's shared parts (one per app, on ``app.state.site``)."""

    def __init__(self, store: SqlTicketStore, pack: RulePack, clock: Callable[[], dt.datetime], metrics=None,
                 secure_cookies: bool = False, orgs: OrgDirectory | None = None, rules_dir: Path | None = None):
        self.store, self.pack, self.clock, self.metrics = store, pack, clock, metrics
        self.orgs = orgs or OrgDirectory()
        self.rules_dir = rules_dir  # the folder the pack was read from: the rules pages show its text
        self.users = UserStore(store.engine)
        self.failed_users, self.failed_addresses = Failures(LOGIN_LIMIT), Failures(ADDRESS_LIMIT)
        self.headers = dict(SECURITY_HEADERS)
        if secure_cookies:
            self.headers["Strict-Transport-Security"] = "max-age=31536000"

    # --- who is asking --------------------------------------------------------------------
    def api_user(self, request: Request) -> User:
        header = request.headers.get("authorization", "")
        user = self.users.by_token(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if user is None:
            raise HTTPException(401, "a valid API token is required", headers={"WWW-Authenticate": "Bearer"})
        return user

    def page_user(self, request: Request) -> User | None:
        sid = request.session.get("sid")
        return self.users.session_user(sid) if isinstance(sid, str) else None

    def require(self, request: Request) -> User:
        user = self.page_user(request)
        if user is None:
            raise HTTPException(303, headers={"Location": "/login"})
        return user

    @staticmethod
    def scope(user: User) -> tuple[str, ...] | None:
        """The departments whose tickets ``user`` sees; None for all."""
        return None if user.role in ("viewer", "head", "admin") else user.departments

    def readable(self, user: User, ticket_id: int) -> dict[str, Any]:
        try:
            ticket = self.store.get(ticket_id)
        except TicketError:
            raise HTTPException(404, f"no ticket {ticket_id}") from None
        if not user.can_read(ticket):
            raise HTTPException(404, f"no ticket {ticket_id}")  # not 403: others' tickets do not exist for you
        return ticket

    def workable(self, user: User, ticket_id: int) -> dict[str, Any]:
        ticket = self.readable(user, ticket_id)
        if not user.can_act(ticket):
            raise HTTPException(403, "your role may read this ticket but not change it")
        return ticket

    @staticmethod
    def visible(user: User, rows: list[dict]) -> list[dict]:
        return [t for t in rows if user.can_read(t)]

    def act(self, fn, *args):
        """A change to a ticket; a move the workflow refuses is a 409 with its reason."""
        try:
            result = fn(*args)
        except (TicketError, WorkflowError) as err:
            raise HTTPException(409, str(err)) from err
        if (self.metrics is not None and isinstance(result, dict) and result.get("status") == "closed"
                and fn == self.store.move):
            self.metrics.tickets_closed.labels(result["risk_id"], result["outcome"] or "none").inc()
        return result

    # --- pages -----------------------------------------------------------------------------
    @staticmethod
    def check_csrf(request: Request, token: str) -> None:
        expected = request.session.get("csrf")
        if not (isinstance(expected, str) and expected and token and hmac.compare_digest(token, expected)):
            raise HTTPException(403, "the form is stale or forged (CSRF); reload the page")

    def render(self, request: Request, name: str, user: User | None, status_code: int = 200, **context):
        lang = pick_lang(request.query_params.get("lang"), request.session.get("lang"))
        request.session["lang"] = lang
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(24)
        nonce = secrets.token_urlsafe(16)  # the page's one inline <style>
        response = TEMPLATES.TemplateResponse(request, name, {
            "t": MESSAGES[lang], "lang": lang, "user": user, "csrf": request.session["csrf"], "nonce": nonce,
            "label": lambda kind, value: label(lang, kind, value), "grade_of": grade_of,
            "in_lang": lambda text: in_lang(lang, text),
            "risk_title": self.risk_title(lang), "org_name": lambda org_id: self.orgs.name(org_id, lang),
            **context}, status_code=status_code)
        response.headers["Content-Security-Policy"] = self.headers["Content-Security-Policy"] + f"; style-src 'nonce-{nonce}'"
        return response

    def risk_title(self, lang: str) -> Callable[[str], str]:
        def title(risk_id: str) -> str:
            risk = self.pack.risks.get(risk_id)
            return (risk.title_zh if lang == "zh" else risk.title_en) if risk else risk_id
        return title


def site(request: Request) -> Site:
    """The dependency every router takes: ``site: Site = Depends(site)``."""
    return request.app.state.site
