"""The three lists (三项清单) as the pack holds them: the compliance risk list, the post
duties and the review-process controls, each entry with its live rules and detectors,
whether it is covered, and its tickets (each count opens the inbox filtered)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from monitor.cases.catalogue import TicketCounts, ticket_counts
from monitor.web.site import Site, site

router = APIRouter(include_in_schema=False)


def _watchers(web: Site) -> dict[str, list]:
    """Risk id -> the rules, detectors and controls that alert on it."""
    out: dict[str, list] = {}
    for entry in [*web.pack.rules, *web.pack.detectors, *web.pack.controls]:
        out.setdefault(entry.risk.id, []).append(entry)
    return out


@router.get("/lists/risks", response_class=HTMLResponse)
def risk_list(request: Request, web: Site = Depends(site)):
    user = web.require(request)
    counts = ticket_counts(web.store.engine, web.scope(user), web.clock())
    return web.render(request, "risks.html", user, risks=list(web.pack.risks.values()), watchers=_watchers(web),
                      counts=counts, of=TicketCounts.of, posts=web.pack.posts)


@router.get("/lists/duties", response_class=HTMLResponse)
def duty_list(request: Request, web: Site = Depends(site)):
    user = web.require(request)
    counts = ticket_counts(web.store.engine, web.scope(user), web.clock())
    return web.render(request, "duties.html", user, posts=list(web.pack.posts.values()), counts=counts,
                      of=TicketCounts.of, risks=web.pack.risks)


@router.get("/lists/controls", response_class=HTMLResponse)
def control_list(request: Request, web: Site = Depends(site)):
    user = web.require(request)
    counts = ticket_counts(web.store.engine, web.scope(user), web.clock())
    return web.render(request, "controls.html", user, controls=web.pack.controls, counts=counts, of=TicketCounts.of,
                      posts=web.pack.posts)
