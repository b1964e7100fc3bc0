"""The REST API: ``/health`` (the only anonymous endpoint) and ``/api/...`` with a bearer token.

``GET /api/tickets`` takes the inbox's filter (``monitor.cases.inbox.TicketFilter``:
``status``, ``risk``, ``area``, ``org``, ``grade``, ``q``, ``sort``, ``page`` ...) and
answers one page, with the total in ``X-Total-Count``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from monitor.cases.auth import User
from monitor.cases.inbox import TicketFilter, search
from monitor.web.exports import export_response
from monitor.web.pages.ticket import detail
from monitor.web.site import Site, Text, TicketId, site

router = APIRouter()


class Move(BaseModel):
    to: str = Field(max_length=32)
    reason: Text | None = None
    outcome: str | None = Field(None, max_length=32)


class Assignment(BaseModel):
    assignee: str = Field(max_length=64)
    reason: Text | None = None


class Comment(BaseModel):
    text: Text


def api_user(request: Request, web: Site = Depends(site)) -> User:
    return web.api_user(request)


@router.get("/health")
def health(web: Site = Depends(site)) -> dict:
    return {"status": "ok", "rule_pack": web.pack.version}


@router.get("/api/tickets")
def list_tickets(request: Request, response: Response, user: User = Depends(api_user),
                 web: Site = Depends(site)) -> list[dict]:
    found = search(web.store.engine, web.pack, TicketFilter.from_query(request.query_params), web.scope(user),
                   web.clock(), web.orgs)
    response.headers["X-Total-Count"] = str(found.total)
    return [{k: v for k, v in t.items() if k != "alert"} for t in found.rows]


@router.get("/api/openapi.json", include_in_schema=False)
def openapi(request: Request, user: User = Depends(api_user)) -> dict:
    return request.app.openapi()


@router.get("/api/tickets/{ticket_id}")
def get_ticket(ticket_id: TicketId, user: User = Depends(api_user), web: Site = Depends(site)) -> dict:
    return detail(web, web.readable(user, ticket_id))


@router.post("/api/tickets/{ticket_id}/move")
def move(ticket_id: TicketId, body: Move, user: User = Depends(api_user), web: Site = Depends(site)) -> dict:
    web.workable(user, ticket_id)
    return web.act(web.store.move, ticket_id, body.to, user.username, web.clock(), body.reason, body.outcome)


@router.post("/api/tickets/{ticket_id}/assign")
def assign(ticket_id: TicketId, body: Assignment, user: User = Depends(api_user), web: Site = Depends(site)) -> dict:
    ticket = web.workable(user, ticket_id)
    try:
        web.users.assignable(body.assignee, ticket)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    return web.act(web.store.assign, ticket_id, body.assignee, user.username, web.clock(), body.reason)


@router.post("/api/tickets/{ticket_id}/comments", status_code=201)
def comment(ticket_id: TicketId, body: Comment, user: User = Depends(api_user), web: Site = Depends(site)) -> dict:
    web.workable(user, ticket_id)
    web.act(web.store.comment, ticket_id, user.username, body.text, web.clock())
    return {"ok": True}


@router.get("/api/exports/{kind}")
def export(request: Request, kind: str, format: str = "xlsx", user: User = Depends(api_user),  # noqa: A002
           web: Site = Depends(site)):
    return export_response(web, user, kind, format, request.query_params)
