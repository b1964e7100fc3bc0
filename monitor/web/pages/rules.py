"""The rules, read-only: every rule, detector and review control with its tickets; one
entry as its analyst wrote it (its tests beside it), its tickets by week, and the rule
pack's version history (``rule_pack_versions``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from monitor.cases.catalogue import TicketCounts, ticket_counts, weekly_opened
from monitor.packs.rulefiles import rule_sources
from monitor.web.site import Site, site

router = APIRouter(include_in_schema=False)
HIT_WEEKS = 26


def _entries(web: Site) -> list[tuple[str, object]]:
    pack = web.pack
    return ([(r.kind, r) for r in pack.rules] + [("detector", d) for d in pack.detectors]
            + [("control", c) for c in pack.controls])


@router.get("/rules", response_class=HTMLResponse)
def rules_index(request: Request, web: Site = Depends(site)):
    user = web.require(request)
    sources = rule_sources(web.rules_dir) if web.rules_dir else {}
    return web.render(request, "rules.html", user, entries=_entries(web), sources=sources, version=web.pack.version,
                      counts=ticket_counts(web.store.engine, web.scope(user), web.clock()), of=TicketCounts.of,
                      versions=web.store.pack_versions())


@router.get("/rules/{rule_id}", response_class=HTMLResponse)
def rule_page(request: Request, rule_id: str, web: Site = Depends(site)):
    user = web.require(request)
    found = next(((kind, entry) for kind, entry in _entries(web) if entry.id == rule_id), None)
    if found is None:
        raise HTTPException(404, f"no rule {rule_id}")
    source = (rule_sources(web.rules_dir) if web.rules_dir else {}).get(rule_id)
    hits = weekly_opened(web.store.engine, rule_id, HIT_WEEKS, web.clock(), web.scope(user))
    counts = ticket_counts(web.store.engine, web.scope(user), web.clock())
    return web.render(request, "rule.html", user, kind=found[0], entry=found[1], source=source, hits=hits,
                      peak=max([1, *(n for _, n in hits)]), counts=TicketCounts.of(counts.by_rule, rule_id))
