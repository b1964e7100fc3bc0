"""The violation record (违规行为记录: tickets resolved as confirmed violations) and the
typical cases (典型案例), browsable a page at a time and exportable."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from monitor.cases.inbox import TicketFilter, search
from monitor.web.site import Site, site

router = APIRouter(include_in_schema=False)


def _records(request: Request, web: Site, kind: str, fixed: dict[str, str]):
    user = web.require(request)
    query = {**{k: v for k, v in request.query_params.items() if k in ("q", "org", "risk", "page")}, **fixed}
    chosen = TicketFilter.from_query(query)
    page = search(web.store.engine, web.pack, chosen, web.scope(user), web.clock(), web.orgs)
    return web.render(request, "records.html", user, kind=kind, page=page, chosen=chosen,
                      link=lambda **changes: f"/{kind}?" + urlencode({k: v for k, v in chosen.query(**changes).items()
                                                                       if k in ("q", "org", "risk", "page")}))


@router.get("/violations", response_class=HTMLResponse)
def violations(request: Request, web: Site = Depends(site)):
    return _records(request, web, "violations", {"outcome": "confirmed_violation", "status": "all", "sort": "oldest"})


@router.get("/cases", response_class=HTMLResponse)
def cases(request: Request, web: Site = Depends(site)):
    return _records(request, web, "cases", {"typical": "1", "status": "all", "sort": "newest"})
