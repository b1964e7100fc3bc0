"""The inbox's query: tickets by filter, search, sort and page, in SQL.

A filter is what the inbox's URL says (``/?status=open&grade=red&q=恒达``), so
a saved link is a saved filter. Everything is done by the database: the
page of rows and the total are two queries whatever the number of tickets,
and an officer's scope (their departments) is part of the ``WHERE``.

    f = TicketFilter.from_query({"grade": "red", "overdue": "1"})
    page = search(store.engine, pack, f, scope=user.departments or None, now=now)
    page.rows, page.total, page.pages

Vocabulary from the rule pack: ``area`` (the risk list's areas) becomes the
risks of that area, ``grade`` (红/黄/蓝) the severities of that grade,
``source`` (rule, detector, review control) the ids of that kind.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from monitor.cases.schema import Ticket, ticket_row
from monitor.cases.workflow import STATES
from monitor.core.rules import RulePack
from monitor.packs.orgs import OrgDirectory

__all__ = ["GRADE_SEVERITIES", "PER_PAGE", "SORTS", "InboxPage", "TicketFilter", "grade_of", "search", "select_filtered"]

PER_PAGE = 50
MAX_PER_PAGE = 200
OPEN_STATES = ("open", "acknowledged", "investigating")
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
GRADE_SEVERITIES = {"red": ("critical", "high"), "yellow": ("medium",), "blue": ("low",)}  # 红/黄/蓝 预警等级
GRADE_OF = {s: g for g, severities in GRADE_SEVERITIES.items() for s in severities}


def grade_of(severity: str) -> str:
    """A severity's warning grade: red for what must be acted on now, yellow soon, blue to watch."""
    return GRADE_OF.get(severity, "blue")
SORTS = ("newest", "oldest", "due_first", "severity_first")


@dataclass(frozen=True)
class TicketFilter:
    """What the inbox shows; every field optional, each a URL parameter of the same name."""

    status: str = "active"  # a state; "active": not yet resolved (the default); "all": any
    risk: str = ""
    area: str = ""
    org: str = ""
    severity: str = ""
    grade: str = ""
    post: str = ""  # owner post
    department: str = ""
    assignee: str = ""
    rule: str = ""
    source: str = ""  # rule | detector | control
    outcome: str = ""  # confirmed_violation: the violation record
    typical: bool = False  # the typical cases
    overdue: bool = False
    opened_from: dt.date | None = None
    opened_to: dt.date | None = None
    closed_from: dt.date | None = None  # closed (销号) in these days
    closed_to: dt.date | None = None
    q: str = ""
    sort: str = "newest"
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> TicketFilter:
        """From URL parameters; what does not parse is left out rather than refused
        (a hand-edited link still opens the inbox), and the rest is bounded.

        >>> f = TicketFilter.from_query({"grade": "red", "overdue": "1", "page": "-3", "opened_from": "2026-13-01"})
        >>> f.grade, f.overdue, f.page, f.opened_from
        ('red', True, 1, None)
        """
        text = {f.name: str(query.get(f.name, "")).strip()[:200] for f in fields(cls)}
        return cls(status=text["status"] if "status" in query else "active", risk=text["risk"], area=text["area"], org=text["org"],
                   severity=text["severity"], grade=text["grade"], post=text["post"], department=text["department"],
                   assignee=text["assignee"], rule=text["rule"], source=text["source"], outcome=text["outcome"],
                   typical=text["typical"] in ("1", "true", "on", "yes"),
                   overdue=text["overdue"] in ("1", "true", "on", "yes"), opened_from=_date(text["opened_from"]),
                   opened_to=_date(text["opened_to"]), closed_from=_date(text["closed_from"]),
                   closed_to=_date(text["closed_to"]), q=text["q"],
                   sort=text["sort"] if text["sort"] in SORTS else "newest", page=_int(text["page"], 1, 1, 10**6),
                   per_page=_int(text["per_page"], PER_PAGE, 1, MAX_PER_PAGE))

    def query(self, **changes: Any) -> dict[str, str]:
        """The URL parameters that give this filter (with ``changes``), defaults left out."""
        values = {f.name: getattr(self, f.name) for f in fields(self)} | changes
        out = {}
        for f in fields(self):
            v = values[f.name]
            if v in ("", None, False) or (f.name, v) in (("status", "active"), ("sort", "newest"), ("page", 1),
                                                         ("per_page", PER_PAGE)):
                continue
            out[f.name] = "1" if v is True else v.isoformat() if isinstance(v, dt.date) else str(v)
        return out


@dataclass(frozen=True)
class InboxPage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _int(value: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(value), low), high)
    except ValueError:
        return default


def search_text():
    """What a search looks in, lowercased: title, message, the key's ids, the counterparty.
    Written with literal separators so that PostgreSQL matches it to the trigram
    index of migration 0009 (``SEARCH_SQL``)."""
    space = literal_column("' '")
    return func.lower(Ticket.title.op("||")(space).op("||")(Ticket.message).op("||")(space)
                      .op("||")(Ticket.dedup_key).op("||")(space)
                      .op("||")(func.coalesce(Ticket.counterparty_name, literal_column("''"))).op("||")(space)
                      .op("||")(func.coalesce(Ticket.counterparty_id, literal_column("''"))))


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def conditions(pack: RulePack, f: TicketFilter, scope: Iterable[str] | None, now: dt.datetime,
               orgs: OrgDirectory | None = None) -> list:
    """The ``WHERE`` of a filter: ``scope`` is the departments an officer may see (None: all);
    an org is the org and every org below it in ``orgs``."""
    where = []
    if scope is not None:
        where.append(Ticket.owner_department.in_(list(scope)))
    if f.status == "active":
        where.append(Ticket.status.in_(OPEN_STATES))
    elif f.status in STATES:
        where.append(Ticket.status == f.status)
    if f.org:
        where.append(Ticket.org_id.in_(sorted(orgs.subtree(f.org))) if orgs is not None else Ticket.org_id == f.org)
    for column, value in ((Ticket.risk_id, f.risk), (Ticket.severity, f.severity),
                          (Ticket.owner_post, f.post), (Ticket.owner_department, f.department),
                          (Ticket.assignee, f.assignee), (Ticket.rule_id, f.rule), (Ticket.outcome, f.outcome)):
        if value:
            where.append(column == value)
    if f.area:
        where.append(Ticket.risk_id.in_([r.id for r in pack.risks.values() if r.area == f.area] or [""]))
    if f.grade:
        where.append(Ticket.severity.in_(GRADE_SEVERITIES.get(f.grade, ("",))))
    if f.source:
        kinds = {"rule": pack.rules, "detector": pack.detectors, "control": pack.controls}
        where.append(Ticket.rule_id.in_([r.id for r in kinds.get(f.source, [])] or [""]))
    if f.typical:
        where.append(Ticket.typical_case.is_(True))
    if f.overdue:
        where.append(and_(Ticket.status.in_(OPEN_STATES), Ticket.due_at < now))
    for column, first, last in ((Ticket.opened_at, f.opened_from, f.opened_to),
                                (Ticket.closed_at, f.closed_from, f.closed_to)):
        if first:
            where.append(column >= dt.datetime.combine(first, dt.time(), dt.timezone.utc))
        if last:
            where.append(column < dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.timezone.utc))
    if f.q:
        terms = [search_text().like(_like(f.q.lower()), escape="\\"), Ticket.alert_id == f.q]
        if f.q.isdigit() and int(f.q) < 2**63:
            terms.append(Ticket.id == int(f.q))
        where.append(or_(*terms))
    return where


def _order(sort: str) -> list:
    severity = case(SEVERITY_RANK, value=Ticket.severity, else_=9)
    return {"newest": [Ticket.id.desc()], "oldest": [Ticket.id.asc()],
            "due_first": [Ticket.due_at.asc(), Ticket.id.asc()],
            "severity_first": [severity, Ticket.due_at.asc(), Ticket.id.asc()]}[sort]


def select_filtered(pack: RulePack, f: TicketFilter, scope: Iterable[str] | None, now: dt.datetime,
                    orgs: OrgDirectory | None = None):
    """Every ticket of the filter, in its order (for an export): a SELECT to stream."""
    return select(Ticket).where(*conditions(pack, f, scope, now, orgs)).order_by(*_order(f.sort))


def search(engine: Engine, pack: RulePack, f: TicketFilter, scope: Iterable[str] | None, now: dt.datetime,
           orgs: OrgDirectory | None = None) -> InboxPage:
    """One page of the filter's tickets, and how many there are in all."""
    where = conditions(pack, f, scope, now, orgs)
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0
        pages = max(1, -(-total // f.per_page))
        page = min(f.page, pages)
        query = select(Ticket).where(*where).order_by(*_order(f.sort)).offset((page - 1) * f.per_page).limit(f.per_page)
        rows = [ticket_row(t) for t in session.scalars(query)]
    return InboxPage(rows, total, page, f.per_page)
