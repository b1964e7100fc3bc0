"""The cockpit (首页 / 驾驶舱): the whole group at a glance, every figure one click from its tickets.

Risk × subsidiary heat map in 红/黄/蓝, weekly new and closed tickets per area,
open and overdue tickets per owner post, the share disposed within SLA, the
top risks and rules, the review rate (审查率); a period and an org picker.
The charts are drawn on the server (SVG and tables, no script), each with its
numbers in a table or a tooltip.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from monitor.cases.cockpit import OTHERS, CockpitQuery, cockpit
from monitor.web.site import Site, site

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def cockpit_page(request: Request, web: Site = Depends(site)):
    user = web.require(request)
    today = web.clock().date()
    chosen = CockpitQuery.from_query(request.query_params, today)
    roots = [o.id for o, depth in web.orgs.tree() if depth == 0]
    if not chosen.org and len(roots) == 1:
        chosen = CockpitQuery(roots[0], chosen.start, chosen.end)
    view = cockpit(web.store.engine, web.pack, web.orgs, chosen, web.scope(user), web.clock())

    def inbox(**filters) -> str:
        """The inbox filtered as a figure says (the cockpit's org, unless the figure names one)."""
        filters = {"org": chosen.org, **filters}
        if filters.get("org") == OTHERS:
            filters["org"] = chosen.org
        return "/inbox?" + urlencode({k: v for k, v in filters.items() if v not in ("", None)})

    week_end = lambda monday: min(monday + dt.timedelta(days=6), chosen.end)  # noqa: E731
    max_weight = max((c["weight"] for row in view.heat.values() for c in row.values()), default=0)
    weekly = [(w, sum(view.opened.get(a, {}).get(w, 0) for a in view.areas),
               sum(view.closed.get(a, {}).get(w, 0) for a in view.areas)) for w in view.weeks]
    return web.render(request, "cockpit.html", user, view=view, chosen=chosen, inbox=inbox, week_end=week_end,
                      max_weight=max_weight, weekly=weekly, peak=max([1, *(max(o, c) for _, o, c in weekly)]),
                      orgs_tree=[(o.id, depth) for o, depth in web.orgs.tree()], others=OTHERS,
                      risks=sorted(view.heat, key=lambda r: (-view.risk_totals.get(r, 0), r)),
                      post_title=lambda p: web.pack.posts[p].title if p in web.pack.posts else p,
                      rule_title=lambda r: _rule_title(web, r))


def _rule_title(web: Site, rule_id: str) -> str:
    """A rule's, detector's or control's title; a rule no longer in the pack by its id."""
    try:
        return web.pack.rule(rule_id).title
    except StopIteration:
        return rule_id
