"""The cockpit's figures (监管驾驶舱): the whole picture of one org subtree, in a few grouped queries.

    view = cockpit(store.engine, pack, orgs, CockpitQuery(org="JCGROUP", start=d0, end=d1), scope=None, now=now)
    view.heat          # risk × subsidiary: open tickets weighted by severity, and the worst grade there
    view.weeks         # new and closed tickets per week and area
    view.posts         # open and overdue tickets per owner post
    view.sla           # the share of tickets resolved in the period that were resolved within their SLA
    view.top_risks, view.top_rules, view.review

Every figure comes from two grouped scans in the database; what is done here is
over those groups (at most orgs × rules with open tickets, and weeks × weeks ×
risks), never over tickets. The group's root org is every ticket, in or out of
the directory.
An org's column in the heat map is one of the chosen org's children and holds
its whole subtree; past ``MAX_COLUMNS`` children the smaller ones share "others".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from monitor.cases.inbox import GRADE_SEVERITIES, OPEN_STATES, grade_of
from monitor.cases.schema import MatterReview, Ticket
from monitor.cases.tickets import rates_of
from monitor.core.rules import RulePack
from monitor.packs.orgs import OrgDirectory

__all__ = ["CockpitQuery", "Cockpit", "cockpit"]

SEVERITY_WEIGHT = {"critical": 4, "high": 3, "medium": 2, "low": 1}
GRADE_ORDER = tuple(GRADE_SEVERITIES)  # worst first
MAX_COLUMNS = 16
OTHERS = "…"
DEFAULT_WEEKS = 12


@dataclass(frozen=True)
class CockpitQuery:
    """The period and the org the cockpit shows; from URL parameters like the inbox."""

    org: str = ""
    start: dt.date | None = None
    end: dt.date | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], today: dt.date) -> CockpitQuery:
        """Bad dates fall back to the last twelve weeks, ending today.

        >>> q = CockpitQuery.from_query({"start": "2026-01-05", "end": "nonsense"}, dt.date(2026, 3, 2))
        >>> q.start, q.end
        (datetime.date(2026, 1, 5), datetime.date(2026, 3, 2))
        """
        def day(name: str) -> dt.date | None:
            try:
                return dt.date.fromisoformat(str(query.get(name, ""))[:10])
            except ValueError:
                return None

        end = day("end") or today
        start = day("start") or end - dt.timedelta(weeks=DEFAULT_WEEKS) + dt.timedelta(days=1)
        if start > end:
            start, end = end, start
        return cls(str(query.get("org", ""))[:200], start, end)

    def query(self) -> dict[str, str]:
        return {k: v for k, v in (("org", self.org), ("start", self.start.isoformat() if self.start else ""),
                                  ("end", self.end.isoformat() if self.end else "")) if v}


@dataclass
class Cockpit:
    columns: list[str] = field(default_factory=list)  # org ids (children of the chosen org), OTHERS last
    heat: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # risk -> column -> cell
    risk_totals: dict[str, int] = field(default_factory=dict)  # open tickets per risk row
    open_total: int = 0
    overdue_total: int = 0
    by_grade: dict[str, int] = field(default_factory=dict)
    weeks: list[dt.date] = field(default_factory=list)  # Mondays
    areas: list[str] = field(default_factory=list)
    opened: dict[str, dict[dt.date, int]] = field(default_factory=dict)  # area -> week -> tickets opened
    closed: dict[str, dict[dt.date, int]] = field(default_factory=dict)  # area -> week -> tickets closed
    posts: list[dict[str, Any]] = field(default_factory=list)  # post, open, overdue
    sla: dict[str, Any] = field(default_factory=dict)  # resolved, within, share
    top_risks: list[tuple[str, int]] = field(default_factory=list)
    top_rules: list[tuple[str, int]] = field(default_factory=list)
    review: list[dict[str, Any]] = field(default_factory=list)  # per matter kind: reviewed, executed, rate


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc)


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def week_start(column, dialect: str):
    """The Monday of a timestamp's week, in SQL (UTC)."""
    if dialect == "postgresql":
        return func.date_trunc("week", func.timezone("UTC", column))
    return func.date(column, "weekday 0", "-6 days")  # SQLite: the next Sunday (or today), back six days


def _column_of(orgs: OrgDirectory, root: str) -> dict[str, str]:
    """Org id -> the child of ``root`` whose subtree holds it (``root`` itself for its own tickets)."""
    out = {root: root}
    for child in orgs.children.get(root, ()):
        for member in orgs.subtree(child):
            out[member] = child
    return out


def cockpit(engine: Engine, pack: RulePack, orgs: OrgDirectory, q: CockpitQuery, scope: Iterable[str] | None,
            now: dt.datetime) -> Cockpit:
    """Two scans of the tickets: the open ones by org and rule (every open figure), and the
    period's by week opened, week closed and whether resolved in time (the trend and the SLA)."""
    view = Cockpit()
    where = []
    if scope is not None:
        where.append(Ticket.owner_department.in_(list(scope)))
    members: dict[str, str] | None = None
    if q.org:
        members = _column_of(orgs, q.org)
        if orgs.orgs.get(q.org) is None or orgs.orgs[q.org].parent is not None:  # a root is the whole group
            where.append(Ticket.org_id.in_(sorted(members)))
    area_of = {r.id: r.area for r in pack.risks.values()}
    start, end = _day_start(q.start), _day_start(q.end + dt.timedelta(days=1))
    dialect = engine.dialect.name

    def within(column):
        return and_(column >= start, column < end)

    opened_week = case((within(Ticket.opened_at), week_start(Ticket.opened_at, dialect)))
    closed_week = case((within(Ticket.closed_at), week_start(Ticket.closed_at, dialect)))
    in_time = case((within(Ticket.resolved_at), case((Ticket.resolved_at <= Ticket.due_at, 1), else_=0)))
    overdue = func.sum(case((Ticket.due_at < now, 1), else_=0))
    with Session(engine) as session:
        open_rows = session.execute(
            select(Ticket.org_id, Ticket.rule_id, Ticket.risk_id, Ticket.severity, Ticket.owner_post, func.count(), overdue)
            .where(*where, Ticket.status.in_(OPEN_STATES))
            .group_by(Ticket.org_id, Ticket.rule_id, Ticket.risk_id, Ticket.severity, Ticket.owner_post)).all()
        period_rows = session.execute(
            select(opened_week, closed_week, in_time, Ticket.risk_id, func.count())
            .where(*where, or_(within(Ticket.opened_at), within(Ticket.closed_at), within(Ticket.resolved_at)))
            .group_by(opened_week, closed_week, in_time, Ticket.risk_id)).all()
        months = {f"{m.year:04d}-{m.month:02d}" for m in (q.start, q.end)}
        review_query = select(MatterReview.org_id, MatterReview.matter_kind, MatterReview.month, MatterReview.reviewed)\
            .where(MatterReview.month >= min(months), MatterReview.month <= max(months))
        if members is not None:
            review_query = review_query.where(MatterReview.org_id.in_(sorted(members)))
        reviews = session.execute(review_query).all()

    # the open tickets: heat map (risk rows x subsidiary columns), posts, rules
    weight_by_column: dict[str, int] = {}
    raw: list[tuple[str, str, str, int, int]] = []
    posts: dict[str, list[int]] = {}
    rules: dict[str, int] = {}
    for org, rule, risk, severity, post, n, late in open_rows:
        late = late or 0
        column = members.get(org, q.org) if members is not None else org or ""
        raw.append((risk, column, severity, n, late))
        weight_by_column[column] = weight_by_column.get(column, 0) + n * SEVERITY_WEIGHT.get(severity, 1)
        counts = posts.setdefault(post, [0, 0])
        counts[0] += n
        counts[1] += late
        rules[rule] = rules.get(rule, 0) + n
    shown = sorted(weight_by_column, key=lambda c: (-weight_by_column[c], c))
    if len(shown) > MAX_COLUMNS:
        keep = set(shown[:MAX_COLUMNS - 1])
        shown = shown[:MAX_COLUMNS - 1] + [OTHERS]
    else:
        keep = set(shown)
    view.columns = shown
    for risk, column, severity, n, late in raw:
        column = column if column in keep else OTHERS
        cell = view.heat.setdefault(risk, {}).setdefault(column, {"open": 0, "weight": 0, "overdue": 0, "grade": "blue"})
        cell["open"] += n
        cell["overdue"] += late
        cell["weight"] += n * SEVERITY_WEIGHT.get(severity, 1)
        grade = grade_of(severity)
        if GRADE_ORDER.index(grade) < GRADE_ORDER.index(cell["grade"]):
            cell["grade"] = grade
        view.risk_totals[risk] = view.risk_totals.get(risk, 0) + n
        view.open_total += n
        view.overdue_total += late
        view.by_grade[grade] = view.by_grade.get(grade, 0) + n
    view.top_risks = sorted(view.risk_totals.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    view.top_rules = sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    view.posts = sorted(({"post": post, "open": n, "overdue": late} for post, (n, late) in posts.items()),
                        key=lambda p: (-p["overdue"], -p["open"], p["post"]))

    # the period: weekly trend per area, and the SLA of what was resolved in it
    first = monday_of(q.start)
    view.weeks = [first + dt.timedelta(weeks=i) for i in range((monday_of(q.end) - first).days // 7 + 1)]
    resolved = in_time_count = 0
    for opened_at, closed_at, on_time, risk, n in period_rows:
        area = area_of.get(risk, "other")
        for week, into in ((opened_at, view.opened), (closed_at, view.closed)):
            if week is not None:
                by_week = into.setdefault(area, {})
                day = as_date(week)
                by_week[day] = by_week.get(day, 0) + n
        if on_time is not None:
            resolved += n
            in_time_count += n * on_time
    view.areas = sorted(set(view.opened) | set(view.closed))
    view.sla = {"resolved": resolved, "within": in_time_count, "share": in_time_count / resolved if resolved else None}
    per_kind: dict[str, list[int]] = {}
    for rate in rates_of(reviews):
        t = per_kind.setdefault(rate["matter_kind"], [0, 0])
        t[0] += rate["reviewed"]
        t[1] += rate["executed"]
    view.review = [{"kind": kind, "reviewed": r, "executed": n, "rate": r / n} for kind, (r, n) in sorted(per_kind.items())]
    return view
