"""Disposal tickets: every live alert opens one, with an owner and a deadline.

The store sits behind a small port (``TicketStore``): ``SqlTicketStore`` for
SQLite (the embedded default) and PostgreSQL, and ``MemoryTicketStore`` for
unit tests. Upserting the same alert again updates its open ticket; a
partial unique index on the dedup key (open tickets only) keeps concurrent
writers from opening two.

>>> store = SqlTicketStore("sqlite://")
>>> store.open_count()
0
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

import msgspec
import orjson
from sqlalchemy import and_, bindparam, create_engine, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from monitor.cases.schema import (OPEN_TICKET, AuditEntry, EvidenceRow, MatterReview, PackVersion, Ticket, WorkerClaim,
                                  migrate, ticket_row)
from monitor.core.alerts import Alert
from monitor.core.controls import REVIEW_KINDS
from monitor.core.rules import RulePack, parse_duration

__all__ = ["Fence", "FencedError", "MemoryTicketStore", "SqlTicketStore", "TicketError", "TicketStore", "UpsertResult",
           "migrate", "plan_ticket"]

OPEN_STATES = ("open", "acknowledged", "investigating", "resolved")


@dataclass(frozen=True)
class UpsertResult:
    opened: list[Alert]
    updated: list[Alert]


class TicketStore(Protocol):
    """Where tickets live. Shadow alerts must not be passed in."""

    def upsert(self, alerts: list[Alert], pack: RulePack, now: dt.datetime) -> UpsertResult: ...

    def open_count(self) -> int: ...


def plan_ticket(alert: Alert, pack: RulePack, now: dt.datetime) -> dict[str, Any]:
    """The fields of a new ticket for an alert: owner from the duty list,
    deadlines from the risk's SLA."""
    risk = pack.risks[alert.risk_id]
    post = pack.post_for(risk)
    return {
        "dedup_key": alert.dedup_key,
        "alert_id": alert.alert_id,
        "rule_id": alert.rule_id,
        "risk_id": alert.risk_id,
        "severity": alert.severity,
        "domain": alert.domain,
        "org_id": alert.org_id,
        "owner_post": risk.owner,
        "owner_department": post.department if post else None,
        "title": alert.title,
        "message": alert.message,
        "status": "open",
        "event_ids": list(alert.event_ids),
        "hits": alert.count,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "opened_at": now,
        "updated_at": now,
        "ack_due_at": now + dt.timedelta(seconds=parse_duration(risk.sla.acknowledge)),
        "due_at": now + dt.timedelta(seconds=parse_duration(risk.sla.dispose)),
        "alert": msgspec.to_builtins(alert),
        "pack_version": alert.pack_version,
    }


def _merged(ticket_ids: list[str], alert: Alert) -> list[str]:
    known = set(ticket_ids)
    return ticket_ids + [e for e in alert.event_ids if e not in known]


def _update(ticket: Ticket, alert: Alert, now: dt.datetime) -> None:
    """Fold an alert into its open ticket; unchanged evidence changes nothing."""
    merged = _merged(list(ticket.event_ids), alert)
    if merged == ticket.event_ids and alert.count <= ticket.hits:
        return
    ticket.event_ids = merged
    ticket.hits = max(ticket.hits, alert.count)
    ticket.last_seen = max(ticket.last_seen, alert.last_seen)
    ticket.first_seen = min(ticket.first_seen, alert.first_seen)
    ticket.message = alert.message
    ticket.alert = {**msgspec.to_builtins(alert), "event_ids": merged}
    ticket.pack_version = alert.pack_version
    ticket.updated_at = now


def _review_values(j) -> dict[str, Any]:
    executed = dt.datetime.fromtimestamp(j.executed_at, dt.timezone.utc)
    return {"control_id": j.control, "org_id": j.org_id, "matter_id": j.matter_id, "matter_kind": j.matter_kind,
            "month": executed.astimezone(_CST).strftime("%Y-%m"), "executed_at": executed, "reviewed": j.reviewed}


_REVIEW_KEY = ("control_id", "org_id", "matter_id")


_CST = dt.timezone(dt.timedelta(hours=8))


def rates_of(rows: Iterable[tuple[str, str, str, bool]]) -> list[dict[str, Any]]:
    """(org, matter kind, month, reviewed) rows -> the review rate per org, kind and month."""
    totals: dict[tuple[str, str, str], list[int]] = {}
    for org, kind, month, reviewed in rows:
        t = totals.setdefault((org, kind, month), [0, 0])
        t[0] += bool(reviewed)
        t[1] += 1
    return [{"org_id": org, "matter_kind": kind, "month": month, "reviewed": r, "executed": n, "rate": r / n}
            for (org, kind, month), (r, n) in sorted(totals.items())]


class TicketError(Exception):
    """A ticket operation that cannot be done; the message says why."""


class FencedError(TicketError):
    """A worker wrote for partitions another worker has claimed since."""


@dataclass(frozen=True)
class Fence:
    """Whose ticket writes these are: ``owner`` (one claim of worker group
    ``app_id``) for the alerts of ``partitions``. ``SqlTicketStore.upsert``
    refuses them once another claim of those partitions has been made."""

    app_id: str
    owner: str
    partitions: frozenset[int]


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)  # SQLite returns naive UTC


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _opened_entry(ticket_id: int, planned: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The audit row of a ticket opened from ``plan_ticket``'s fields."""
    return {"ticket_id": ticket_id, "at": now, "actor": "riskwatch", "action": "open", "to_status": "open",
            "reason": f"alert {planned['alert_id']}: {planned['title']}", "detail": {"owner_post": planned["owner_post"]}}


def _pack_row(pack: RulePack, now: dt.datetime) -> dict[str, Any]:
    return {"version": pack.version, "first_loaded_at": now, "last_loaded_at": now, "loads": 1,
            "rules": len(pack.rules), "detectors": len(pack.detectors)}


class SqlTicketStore:
    """Tickets in a SQL database through SQLAlchemy 2 (SQLite or PostgreSQL)."""

    def __init__(self, url: str):
        # JSON columns (a ticket's alert and events, evidence) through orjson: a
        # tenth of the json module's time a ticket, and UTF-8 rather than \u escapes.
        self.engine = create_engine(url, json_serializer=_json_text, json_deserializer=orjson.loads)
        for attempt in range(8):
            try:
                migrate(self.engine)
                break
            except DBAPIError:  # SQLite: another process is migrating the same file at this moment
                if attempt == 7:
                    raise
                time.sleep(0.25 * (attempt + 1))

    def record_reviews(self, judgements: list) -> None:
        """Keep the executed matters the review controls judged (a matter judged again keeps its latest)."""
        if not judgements:
            return
        latest = {}  # a matter judged twice in one call: its latest (one statement may not touch a row twice)
        for j in judgements:
            row = _review_values(j)
            latest[tuple(row[c] for c in _REVIEW_KEY)] = row
        rows = list(latest.values())
        upsert = self._dialect_insert()(MatterReview)
        upsert = upsert.on_conflict_do_update(index_elements=list(_REVIEW_KEY), set_={
            c: upsert.excluded[c] for c in ("matter_kind", "month", "executed_at", "reviewed")})
        with self.engine.begin() as conn:
            for i in range(0, len(rows), 500):
                conn.execute(upsert, rows[i:i + 500])

    def _dialect_insert(self):
        """The database's own INSERT, with its ON CONFLICT clauses (PostgreSQL's or SQLite's)."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        return dialect_insert

    def review_rates(self, month: str | None = None, org: str | None = None) -> list[dict[str, Any]]:
        """The review rate (审查率) per org, matter kind and month: the share of
        executed matters whose every required step passed before execution."""
        query = select(MatterReview.org_id, MatterReview.matter_kind, MatterReview.month, MatterReview.reviewed)
        if month is not None:
            query = query.where(MatterReview.month == month)
        if org is not None:
            query = query.where(MatterReview.org_id == org)
        with Session(self.engine) as session:
            return rates_of(session.execute(query).all())

    def latest_review_rates(self) -> list[dict[str, Any]]:
        """The review rates of the latest month with executed matters (the gauge's)."""
        return self._latest_rates(MatterReview.matter_kind.in_(REVIEW_KINDS))

    def latest_participation_rates(self) -> list[dict[str, Any]]:
        """全程参与率 rows (matter kind ``project``) of the latest month a watched project moved on."""
        return self._latest_rates(MatterReview.matter_kind == "project")

    def _latest_rates(self, which) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            month = session.execute(select(func.max(MatterReview.month)).where(which)).scalar()
        if not month:
            return []
        query = select(MatterReview.org_id, MatterReview.matter_kind, MatterReview.month, MatterReview.reviewed)
        with Session(self.engine) as session:
            return rates_of(session.execute(query.where(which, MatterReview.month == month)).all())

    def claim_partitions(self, app_id: str, partitions: Iterable[int], owner: str, now: dt.datetime) -> None:
        """Record ``owner`` as the writer of these input partitions: from now on
        ``upsert`` refuses writes fenced by any earlier owner of them.

        >>> store = SqlTicketStore("sqlite://")
        >>> store.claim_partitions("rw", [0, 1], "old", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
        >>> store.claim_partitions("rw", [1], "new", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
        >>> store.upsert([], None, None, fence=Fence("rw", "old", frozenset({1})))
        Traceback (most recent call last):
        ...
        monitor.cases.tickets.FencedError: input partitions [1] of rw belong to another worker now
        """
        with Session(self.engine) as session, session.begin():
            for partition in partitions:
                session.merge(WorkerClaim(app_id=app_id, input_partition=partition, owner=owner, claimed_at=now))

    def _check_fence(self, session: Session, fence: Fence) -> None:
        # FOR SHARE on PostgreSQL: a claim being made waits for this transaction, or this for it.
        rows = session.execute(
            select(WorkerClaim.input_partition, WorkerClaim.owner)
            .where(WorkerClaim.app_id == fence.app_id, WorkerClaim.input_partition.in_(sorted(fence.partitions)))
            .with_for_update(read=True)).all()
        owners = {partition: owner for partition, owner in rows}
        lost = sorted(p for p in fence.partitions if owners.get(p) != fence.owner)
        if lost:
            raise FencedError(f"input partitions {lost} of {fence.app_id} belong to another worker now")

    def upsert(self, alerts: list[Alert], pack: RulePack, now: dt.datetime, fence: Fence | None = None) -> UpsertResult:
        """Open or update tickets for a batch of alerts in one transaction; if
        another writer opened one of them meanwhile, redo alert by alert.
        With ``fence``, nothing is written unless its owner still holds its partitions."""
        if not alerts and fence is None:
            return UpsertResult([], [])
        with Session(self.engine) as session:
            if fence is not None:
                self._check_fence(session, fence)
            if not alerts:
                return UpsertResult([], [])
            try:
                return self._upsert_bulk(session, alerts, pack, now)
            except IntegrityError:
                session.rollback()
            opened, updated = [], []
            for alert in alerts:
                if fence is not None:
                    self._check_fence(session, fence)
                is_new = self._upsert_one(session, alert, pack, now)
                (opened if is_new else updated).append(alert)
            return UpsertResult(opened, updated)

    def _upsert_bulk(self, session: Session, alerts: list[Alert], pack: RulePack, now: dt.datetime) -> UpsertResult:
        by_key = {a.dedup_key: a for a in alerts}
        existing: dict[str, Ticket] = {}
        keys = list(by_key)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            for ticket in session.scalars(select(Ticket).where(Ticket.dedup_key.in_(chunk), OPEN_TICKET)):
                existing[ticket.dedup_key] = ticket
        opened, updated, planned = [], [], []
        for key, alert in by_key.items():
            ticket = existing.get(key)
            if ticket is None:
                planned.append(plan_ticket(alert, pack, now))
                opened.append(alert)
            else:
                _update(ticket, alert, now)
                updated.append(alert)
        session.flush()
        if planned:  # as rows, not ORM objects: one executemany, no object kept per ticket
            conn = session.connection()
            conn.execute(insert(Ticket.__table__), planned)
            ids = self._open_ids(session, [p["dedup_key"] for p in planned])
            conn.execute(insert(AuditEntry.__table__), [_opened_entry(ids[p["dedup_key"]], p, now) for p in planned])
        session.commit()
        return UpsertResult(opened, updated)

    @staticmethod
    def _open_ids(session: Session, keys: list[str]) -> dict[str, int]:
        """The ids of the open tickets of these dedup keys. Read back by key rather than
        with INSERT … RETURNING, which SQLite runs a row at a time when the order must hold."""
        ids: dict[str, int] = {}
        for i in range(0, len(keys), 500):
            ids.update(session.execute(select(Ticket.dedup_key, Ticket.id)
                                       .where(Ticket.dedup_key.in_(keys[i:i + 500]), OPEN_TICKET)).all())
        return ids

    def _upsert_one(self, session: Session, alert: Alert, pack: RulePack, now: dt.datetime) -> bool:
        for _attempt in range(3):
            ticket = session.scalars(select(Ticket).where(Ticket.dedup_key == alert.dedup_key, OPEN_TICKET)).first()
            if ticket is not None:
                _update(ticket, alert, now)
                session.commit()
                return False
            planned = plan_ticket(alert, pack, now)
            ticket = Ticket(**planned)
            session.add(ticket)
            try:
                session.flush()
                session.add(AuditEntry(**_opened_entry(ticket.id, planned, now)))
                session.commit()
                return True
            except IntegrityError:  # another writer opened it first: update theirs
                session.rollback()
        raise RuntimeError(f"could not upsert ticket for {alert.dedup_key}")

    def open_count(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(Ticket).where(OPEN_TICKET))

    # --- the disposal workflow ---------------------------------------------------------------
    def get(self, ticket_id: int) -> dict[str, Any]:
        with Session(self.engine) as session:
            return ticket_row(self._ticket(session, ticket_id))

    def find(self, status: str | None = None, risk: str | None = None, org: str | None = None,
             department: str | None = None, overdue_at: dt.datetime | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Tickets by filter, newest first."""
        query = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
        for column, value in ((Ticket.status, status), (Ticket.risk_id, risk), (Ticket.org_id, org),
                              (Ticket.owner_department, department)):
            if value is not None:
                query = query.where(column == value)
        if overdue_at is not None:
            query = query.where(Ticket.status.not_in(("resolved", "closed")), Ticket.due_at < overdue_at)
        with Session(self.engine) as session:
            return [ticket_row(t) for t in session.scalars(query)]

    def move(self, ticket_id: int, to: str, actor: str, now: dt.datetime, reason: str | None = None,
             outcome: str | None = None) -> dict[str, Any]:
        """Move a ticket along the workflow (``monitor.cases.workflow``), recording who, when and why."""
        from monitor.cases.workflow import check_move

        with Session(self.engine) as session:
            ticket = self._ticket(session, ticket_id, lock=True)
            check_move(ticket.status, to, outcome)
            before = ticket.status
            ticket.status = to
            ticket.updated_at = now
            if to == "acknowledged":
                ticket.acknowledged_at = now
            elif to == "resolved":
                ticket.resolved_at, ticket.outcome = now, outcome
            elif to == "closed":
                ticket.closed_at = now
            elif to == "open":  # reopened: a fresh disposal, the old outcome no longer stands
                ticket.outcome = ticket.resolved_at = ticket.closed_at = None
            session.add(AuditEntry(ticket_id=ticket.id, at=now, actor=actor, action="move", from_status=before,
                                   to_status=to, reason=reason, detail={"outcome": outcome} if outcome else None))
            try:
                session.commit()
            except IntegrityError as err:  # reopening while another open ticket holds the finding
                session.rollback()
                raise TicketError(f"ticket {ticket_id}: another open ticket already holds this finding") from err
            return ticket_row(ticket)

    def assign(self, ticket_id: int, assignee: str, actor: str, now: dt.datetime, reason: str | None = None) -> dict[str, Any]:
        with Session(self.engine) as session:
            ticket = self._ticket(session, ticket_id, lock=True)
            session.add(AuditEntry(ticket_id=ticket.id, at=now, actor=actor, action="assign", reason=reason,
                                   detail={"from": ticket.assignee, "to": assignee}))
            ticket.assignee, ticket.updated_at = assignee, now
            session.commit()
            return ticket_row(ticket)

    def comment(self, ticket_id: int, actor: str, text_: str, now: dt.datetime) -> None:
        if not text_.strip():
            raise TicketError("a comment needs some text")
        with Session(self.engine) as session:
            ticket = self._ticket(session, ticket_id)
            session.add(AuditEntry(ticket_id=ticket.id, at=now, actor=actor, action="comment", reason=text_))
            session.commit()

    def mark_typical(self, ticket_id: int, actor: str, summary: str, now: dt.datetime) -> dict[str, Any]:
        """Mark a closed ticket as a typical case (典型案例) with its summary."""
        with Session(self.engine) as session:
            ticket = self._ticket(session, ticket_id, lock=True)
            if ticket.status != "closed":
                raise TicketError(f"ticket {ticket_id} is {ticket.status}: only closed tickets become typical cases")
            if not summary.strip():
                raise TicketError("a typical case needs a summary")
            ticket.typical_case, ticket.case_summary, ticket.updated_at = True, summary, now
            session.add(AuditEntry(ticket_id=ticket.id, at=now, actor=actor, action="typical_case", reason=summary))
            session.commit()
            return ticket_row(ticket)

    def audit(self, ticket_id: int) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            self._ticket(session, ticket_id)
            rows = session.scalars(select(AuditEntry).where(AuditEntry.ticket_id == ticket_id).order_by(AuditEntry.id))
            return [{c.name: getattr(r, c.name) for c in AuditEntry.__table__.columns} for r in rows]

    def escalate(self, pack: RulePack, now: dt.datetime) -> list[dict[str, Any]]:
        """The periodic check: escalate every overdue ticket that is due for it (one
        level at a time, recorded in its audit trail); returns what was escalated."""
        from monitor.cases.workflow import escalation_due

        done = []
        with Session(self.engine) as session:
            query = select(Ticket).where(Ticket.status.not_in(("resolved", "closed")), Ticket.escalation_level < 2)
            for ticket in session.scalars(query):
                step = escalation_due(pack, ticket.owner_post, ticket.risk_id, ticket.status, ticket.escalation_level,
                                      _utc(ticket.ack_due_at), _utc(ticket.due_at), now)
                if step is None:
                    continue
                level, post = step
                ticket.escalation_level, ticket.escalated_to, ticket.escalated_at = level, post, now
                session.add(AuditEntry(ticket_id=ticket.id, at=now, actor="riskwatch", action="escalate",
                                       reason=f"overdue: escalated to {post}", detail={"level": level, "to": post}))
                done.append({"ticket_id": ticket.id, "level": level, "to": post, "risk_id": ticket.risk_id,
                             "severity": ticket.severity, "domain": ticket.domain, "org_id": ticket.org_id,
                             "title": ticket.title, "message": ticket.message, "owner": ticket.owner_post})
            session.commit()
        return done

    def add_evidence(self, items: list[tuple[str, dict]]) -> None:
        """Keep the events behind alerts; an event already kept for an alert is left as it is."""
        if not items:
            return
        rows = list({(k, e["event_id"]): {"dedup_key": k, "event_id": e["event_id"], "occurred_at": e.get("occurred_at"),
                                          "event": e} for k, e in items}.values())
        insert_or_skip = self._dialect_insert()
        named: dict[str, dict] = {}  # dedup key -> the first of its events that names a counterparty
        for k, e in items:
            if k not in named and isinstance(e.get("counterparty_id") or e.get("counterparty_name"), str):
                named[k] = {"key": k, "party_id": _text(e.get("counterparty_id"), 128),
                            "party_name": _text(e.get("counterparty_name"), 256)}
        with self.engine.begin() as conn:
            for i in range(0, len(rows), 500):
                conn.execute(insert_or_skip(EvidenceRow).on_conflict_do_nothing(), rows[i:i + 500])
            if named:  # the ticket's counterparty, for search and related tickets: one statement, many keys
                conn.execute(update(Ticket).where(Ticket.dedup_key == bindparam("key"), OPEN_TICKET,
                                                  Ticket.counterparty_id.is_(None), Ticket.counterparty_name.is_(None))
                             .values(counterparty_id=bindparam("party_id"), counterparty_name=bindparam("party_name")),
                             list(named.values()))

    def related(self, ticket: dict[str, Any], limit: int = 20) -> list[dict[str, Any]]:
        """Other tickets of the same counterparty, or of the same org and risk, newest first."""
        same = [and_(Ticket.org_id == ticket["org_id"], Ticket.risk_id == ticket["risk_id"])]
        if ticket.get("counterparty_id"):
            same.append(Ticket.counterparty_id == ticket["counterparty_id"])
        query = select(Ticket).where(Ticket.id != ticket["id"], or_(*same)).order_by(Ticket.id.desc()).limit(limit)
        with Session(self.engine) as session:
            return [ticket_row(t) for t in session.scalars(query)]

    def evidence(self, dedup_key: str) -> list[dict[str, Any]]:
        """The events behind a ticket's alert, in business-time order."""
        with Session(self.engine) as session:
            rows = session.scalars(select(EvidenceRow).where(EvidenceRow.dedup_key == dedup_key)
                                   .order_by(EvidenceRow.occurred_at, EvidenceRow.event_id))
            return [r.event for r in rows]

    def export_rows(self, kind: str) -> list[dict[str, Any]]:
        """The rows of an export (``monitor.cases.exports.COLUMNS``): violations, cases or tickets."""
        rows = {"violations": self.violations, "cases": self.typical_cases, "tickets": lambda: self.find(limit=10**9)}
        if kind not in rows:
            raise TicketError(f"exports are violations, cases or tickets, not {kind}")
        return rows[kind]()

    def violations(self) -> list[dict[str, Any]]:
        """The violation record (违规行为记录): tickets resolved as confirmed violations."""
        with Session(self.engine) as session:
            rows = session.scalars(select(Ticket).where(Ticket.outcome == "confirmed_violation").order_by(Ticket.id))
            return [ticket_row(t) for t in rows]

    def typical_cases(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            return [ticket_row(t) for t in session.scalars(select(Ticket).where(Ticket.typical_case.is_(True)).order_by(Ticket.id))]

    @staticmethod
    def _ticket(session: Session, ticket_id: int, lock: bool = False) -> Ticket:
        if not 1 <= ticket_id < 2**63:  # no database holds such an id; asking would overflow the driver
            raise TicketError(f"no ticket {ticket_id}")
        query = select(Ticket).where(Ticket.id == ticket_id)
        ticket = session.scalars(query.with_for_update() if lock else query).first()
        if ticket is None:
            raise TicketError(f"no ticket {ticket_id}")
        return ticket

    def record_pack(self, pack: RulePack, now: dt.datetime) -> None:
        """Note that ``pack`` is scoring from ``now`` (several runners may do it at once)."""
        for _attempt in range(3):
            with Session(self.engine) as session:
                row = session.get(PackVersion, pack.version)
                if row is None:
                    session.add(PackVersion(**_pack_row(pack, now)))
                else:
                    row.last_loaded_at, row.loads = now, row.loads + 1
                try:
                    session.commit()
                    return
                except IntegrityError:  # another runner recorded it first
                    session.rollback()

    def pack_versions(self) -> list[dict[str, Any]]:
        """Each version seen, oldest first, with the tickets it last changed."""
        with Session(self.engine) as session:
            counts = dict(session.execute(select(Ticket.pack_version, func.count()).group_by(Ticket.pack_version)).all())
            rows = session.scalars(select(PackVersion).order_by(PackVersion.first_loaded_at)).all()
            out = [{c.name: getattr(r, c.name) for c in PackVersion.__table__.columns} | {"tickets": counts.pop(r.version, 0)}
                   for r in rows]
        for version, n in counts.items():  # tickets from versions recorded before this table existed
            if version:
                out.append({"version": version, "first_loaded_at": None, "last_loaded_at": None, "loads": 0,
                            "rules": None, "detectors": None, "tickets": n})
        return out

    def tickets(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.scalars(select(Ticket).order_by(Ticket.id)).all()
            return [ticket_row(t) for t in rows]

    def open_by_risk(self) -> dict[tuple[str, str], int]:
        with Session(self.engine) as session:
            rows = session.execute(select(Ticket.risk_id, Ticket.severity, func.count())
                                   .where(OPEN_TICKET).group_by(Ticket.risk_id, Ticket.severity)).all()
        return {(risk, severity): n for risk, severity, n in rows}

    def overdue_by_risk(self, now: dt.datetime) -> dict[tuple[str, str], int]:
        with Session(self.engine) as session:
            rows = session.execute(select(Ticket.risk_id, Ticket.severity, Ticket.due_at)
                                   .where(OPEN_TICKET)).all()
        out: dict[tuple[str, str], int] = {}
        for risk, severity, due in rows:
            if _utc(due) < now:
                out[(risk, severity)] = out.get((risk, severity), 0) + 1
        return out


class MemoryTicketStore:
    """An in-memory ticket store with the same behaviour, for unit tests."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.versions: dict[str, dict[str, Any]] = {}

    def record_pack(self, pack: RulePack, now: dt.datetime) -> None:
        row = self.versions.get(pack.version)
        if row is None:
            self.versions[pack.version] = _pack_row(pack, now)
        else:
            row.update(last_loaded_at=now, loads=row["loads"] + 1)

    def pack_versions(self) -> list[dict[str, Any]]:
        counts = Counter(t["pack_version"] for t in self.rows)
        return [row | {"tickets": counts.get(v, 0)} for v, row in self.versions.items()]

    def upsert(self, alerts: list[Alert], pack: RulePack, now: dt.datetime) -> UpsertResult:
        opened, updated = [], []
        for alert in alerts:
            ticket = next((t for t in self.rows if t["dedup_key"] == alert.dedup_key and t["status"] != "closed"), None)
            if ticket is None:
                self.rows.append(plan_ticket(alert, pack, now))
                opened.append(alert)
            else:
                ticket["event_ids"] = _merged(ticket["event_ids"], alert)
                ticket["hits"] = max(ticket["hits"], alert.count)
                ticket["pack_version"] = alert.pack_version
                ticket["updated_at"] = now
                updated.append(alert)
        return UpsertResult(opened, updated)

    def open_count(self) -> int:
        return sum(1 for t in self.rows if t["status"] != "closed")

    def open_by_risk(self) -> dict[tuple[str, str], int]:
        return dict(Counter((t["risk_id"], t["severity"]) for t in self.rows if t["status"] != "closed"))

    def overdue_by_risk(self, now: dt.datetime) -> dict[tuple[str, str], int]:
        return dict(Counter((t["risk_id"], t["severity"]) for t in self.rows
                            if t["status"] != "closed" and t["due_at"] < now))

    def tickets(self) -> Iterable[dict[str, Any]]:
        return list(self.rows)
