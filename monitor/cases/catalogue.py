"""What the lists and rules pages show beside each entry: its tickets, and a rule's hits by week.

    counts = ticket_counts(store.engine, scope=None, now=now)
    counts.by_rule["fin_payment_without_contract"]   # {"all": 60, "open": 58, "overdue": 3}
    counts.by_risk["FIN-01"], counts.by_post["finance_compliance_officer"]
    weekly_opened(store.engine, "fin_payment_without_contract", weeks=26, now=now, scope=None)

One grouped query for all counts, whatever the number of tickets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from monitor.cases.cockpit import as_date, monday_of, week_start
from monitor.cases.inbox import OPEN_STATES
from monitor.cases.schema import Ticket

__all__ = ["TicketCounts", "ticket_counts", "weekly_opened"]


@dataclass
class TicketCounts:
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    by_risk: dict[str, dict[str, int]] = field(default_factory=dict)
    by_post: dict[str, dict[str, int]] = field(default_factory=dict)

    @staticmethod
    def of(table: dict[str, dict[str, int]], key: str) -> dict[str, int]:
        return table.get(key, {"all": 0, "open": 0, "overdue": 0})


def ticket_counts(engine: Engine, scope: Iterable[str] | None, now: dt.datetime) -> TicketCounts:
    is_open = Ticket.status.in_(OPEN_STATES)
    query = select(Ticket.rule_id, Ticket.risk_id, Ticket.owner_post, func.count(),
                   func.sum(case((is_open, 1), else_=0)),
                   func.sum(case((is_open & (Ticket.due_at < now), 1), else_=0))
                   ).group_by(Ticket.rule_id, Ticket.risk_id, Ticket.owner_post)
    if scope is not None:
        query = query.where(Ticket.owner_department.in_(list(scope)))
    out = TicketCounts()
    with Session(engine) as session:
        for rule, risk, post, n, open_, late in session.execute(query):
            for table, key in ((out.by_rule, rule), (out.by_risk, risk), (out.by_post, post)):
                counts = table.setdefault(key, {"all": 0, "open": 0, "overdue": 0})
                counts["all"] += n
                counts["open"] += open_ or 0
                counts["overdue"] += late or 0
    return out


def weekly_opened(engine: Engine, rule_id: str, weeks: int, now: dt.datetime,
                  scope: Iterable[str] | None) -> list[tuple[dt.date, int]]:
    """Tickets a rule opened in each of the last ``weeks`` weeks (Mondays, oldest first)."""
    first = monday_of(now.date()) - dt.timedelta(weeks=weeks - 1)
    start = dt.datetime.combine(first, dt.time(), dt.timezone.utc)
    week = week_start(Ticket.opened_at, engine.dialect.name)
    query = select(week, func.count()).where(Ticket.rule_id == rule_id, Ticket.opened_at >= start).group_by(week)
    if scope is not None:
        query = query.where(Ticket.owner_department.in_(list(scope)))
    with Session(engine) as session:
        counts = {as_date(w): n for w, n in session.execute(query)}
    return [(first + dt.timedelta(weeks=i), counts.get(first + dt.timedelta(weeks=i), 0)) for i in range(weeks)]
