"""The inbox (工单): every filter in the URL, full-text search, sort, server-side
pages, bulk acknowledge and assign, and an export of exactly the filtered set."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from monitor.cases.inbox import MAX_PER_PAGE, SORTS, TicketFilter, search
from monitor.cases.tickets import TicketError
from monitor.cases.workflow import STATES, WorkflowError
from monitor.web.exports import export_response
from monitor.web.i18n import GRADES, VALUES
from monitor.web.site import MAX_TEXT, Site, site

router = APIRouter(include_in_schema=False)


@router.get("/inbox", response_class=HTMLResponse)
def inbox(request: Request, web: Site = Depends(site)):
    user = web.require(request)
    chosen = TicketFilter.from_query(request.query_params)
    found = search(web.store.engine, web.pack, chosen, web.scope(user), web.clock(), web.orgs)
    pack = web.pack
    choices = {
        "status": ["active", *STATES, "all"], "grade": list(GRADES), "severity": list(VALUES["en"]["severity"]),
        "area": sorted({r.area for r in pack.risks.values()}), "risk": sorted(pack.risks),
        "post": [(p.id, p.title) for p in pack.posts.values()], "source": ["rule", "detector", "control"],
        "sort": list(SORTS), "rule": sorted((r.id, r.title) for r in [*pack.rules, *pack.detectors, *pack.controls]),
        "org": [(o.id, depth) for o, depth in web.orgs.tree()],
    }
    flash = request.session.pop("flash", None)
    return web.render(request, "inbox.html", user, page=found, chosen=chosen, choices=choices, now=web.clock(),
                      link=lambda **changes: "/inbox?" + urlencode(chosen.query(**changes)),
                      here=urlencode(chosen.query()), can_act=user.role in ("officer", "head", "admin"), flash=flash)


@router.get("/overdue")
def overdue():
    return RedirectResponse("/inbox?overdue=1", status_code=303)


@router.post("/tickets/bulk")
def bulk(request: Request, ids: list[int] = Form(default=[], max_length=MAX_PER_PAGE), action: str = Form(...),
         assignee: str = Form("", max_length=64), reason: str = Form("", max_length=MAX_TEXT),
         back: str = Form("", max_length=4000), csrf: str = Form(""), web: Site = Depends(site)):
    """Acknowledge or assign the selected tickets, each through the same checks as one at a time;
    each change is in its ticket's audit trail. What could not be done is said, not hidden."""
    user = web.require(request)
    web.check_csrf(request, csrf)
    if action not in ("acknowledge", "assign"):
        raise HTTPException(422, "action: acknowledge or assign")
    done, skipped = 0, []
    for ticket_id in dict.fromkeys(i for i in ids if 1 <= i < 2**63):
        try:
            ticket = web.workable(user, ticket_id)
            if action == "acknowledge":
                web.store.move(ticket_id, "acknowledged", user.username, web.clock(), reason or None)
            else:
                web.users.assignable(assignee, ticket)
                web.store.assign(ticket_id, assignee, user.username, web.clock(), reason or None)
            done += 1
        except HTTPException as err:
            skipped.append(f"#{ticket_id} {err.detail}")
        except (TicketError, WorkflowError, ValueError) as err:
            skipped.append(f"#{ticket_id} {err}")
    request.session["flash"] = {"done": done, "skipped": len(skipped), "why": "; ".join(skipped[:10])}
    return RedirectResponse("/inbox?" + urlencode(parse_qsl(back)), status_code=303)  # back to the same filter, on this site


@router.get("/exports/{kind}.{fmt}")
def export_page(request: Request, kind: str, fmt: str, web: Site = Depends(site)):
    return export_response(web, web.require(request), kind, fmt, request.query_params)
