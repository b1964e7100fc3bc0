"""One ticket: the finding, its events, the risk's legal basis and owner duties, related tickets,
the matter's timeline (review controls), the disposal forms and the audit trail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from monitor.cases.workflow import MOVES, OUTCOMES
from monitor.core.projects import stage_timeline
from monitor.web.site import MAX_TEXT, Site, TicketId, site

router = APIRouter(include_in_schema=False)


def timeline(control, ticket: dict, events: list[dict]) -> dict[str, Any]:
    """A review ticket's matter: its steps done, in time order, and the step at issue
    (a project's: also its stages, who took part in each and when it moved on)."""
    org, matter_id, mark = (ticket["dedup_key"].split("|") + ["", "", ""])[1:4]
    breach, _, step = mark.partition(":")
    required = [{"step": s.step, "post": s.post, "within_days": s.within / 86400 if s.within else None}
                for s in control.steps]
    rows = []
    for e in sorted(events, key=lambda e: str(e.get("occurred_at"))):
        a = e.get("attributes") or {}
        rows.append({"at": e.get("occurred_at"), "type": e.get("type"),
                     "step": a.get("step") or a.get("stage") or a.get("status"),
                     "who": a.get("reviewer_id") or a.get("drafter_id"), "post": a.get("reviewer_post"),
                     "opinion": a.get("opinion"), "opinion_no": a.get("opinion_no"), "amount": e.get("amount"),
                     "event_id": e.get("event_id")})
    stages = stage_timeline(events) if control.matter_kind == "project" else None
    return {"control": control.id, "title": control.title, "matter_id": matter_id, "breach": breach, "step": step,
            "required": required, "rows": rows, "stages": stages}


def detail(web: Site, ticket: dict) -> dict[str, Any]:
    """What the ticket page and ``GET /api/tickets/{id}`` show of a ticket."""
    pack = web.pack
    rule = next((r for r in [*pack.rules, *pack.detectors] if r.id == ticket["rule_id"]), None)
    control = next((c for c in pack.controls if c.id == ticket["rule_id"]), None)
    risk = pack.risks.get(ticket["risk_id"])
    post = pack.posts.get(ticket["owner_post"])
    events = web.store.evidence(ticket["dedup_key"])
    return {"ticket": ticket, "alert": ticket["alert"],
            "rule": {"id": rule.id, "title": rule.title, "when": rule.spec.when} if rule else None,
            "matter": timeline(control, ticket, events) if control else None,
            "risk": {"id": risk.id, "title_zh": risk.title_zh, "title_en": risk.title_en, "area": risk.area,
                     "legal_basis": risk.legal_basis, "sla": {"acknowledge": risk.sla.acknowledge,
                                                               "dispose": risk.sla.dispose}} if risk else None,
            "post": {"id": post.id, "title": post.title, "department": post.department,
                     "duties": list(post.duties)} if post else None,
            "events": events, "audit": web.store.audit(ticket["id"])}


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(request: Request, ticket_id: TicketId, web: Site = Depends(site)):
    user = web.require(request)
    info = detail(web, web.readable(user, ticket_id))
    related = web.visible(user, web.store.related(info["ticket"]))
    return web.render(request, "ticket.html", user, can_act=user.can_act(info["ticket"]), outcomes=OUTCOMES,
                      moves=MOVES, related=related, **info)


def _worker(request: Request, web: Site, ticket_id: int, csrf: str):
    """Who may change this ticket from a form: logged in, the form's CSRF token, a role and department that work it."""
    user = web.require(request)
    web.check_csrf(request, csrf)
    web.workable(user, ticket_id)
    return user


def _back(ticket_id: int) -> RedirectResponse:
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


@router.post("/tickets/{ticket_id}/move")
def move_form(request: Request, ticket_id: TicketId, to: str = Form(..., max_length=32),
              reason: str = Form("", max_length=MAX_TEXT), outcome: str = Form("", max_length=32), csrf: str = Form(""),
              web: Site = Depends(site)):
    user = _worker(request, web, ticket_id, csrf)
    web.act(web.store.move, ticket_id, to, user.username, web.clock(), reason or None, outcome or None)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/comment")
def comment_form(request: Request, ticket_id: TicketId, text: str = Form(..., max_length=MAX_TEXT),
                 csrf: str = Form(""), web: Site = Depends(site)):
    user = _worker(request, web, ticket_id, csrf)
    web.act(web.store.comment, ticket_id, user.username, text, web.clock())
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/typical")
def typical_form(request: Request, ticket_id: TicketId, summary: str = Form(..., max_length=MAX_TEXT),
                 csrf: str = Form(""), web: Site = Depends(site)):
    """A closed ticket becomes a typical case (典型案例) with its summary."""
    user = _worker(request, web, ticket_id, csrf)
    web.act(web.store.mark_typical, ticket_id, user.username, summary, web.clock())
    return _back(ticket_id)
