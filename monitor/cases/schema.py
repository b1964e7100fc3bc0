"""The ticket database's tables, and bringing a database to the newest schema.

The tables are SQLAlchemy 2 declarative models; Alembic (``monitor/cases/migrations``)
owns their history. ``monitor.cases.tickets`` reads and writes them.

>>> from sqlalchemy import create_engine
>>> engine = create_engine("sqlite://")
>>> migrate(engine)
>>> _at_head(engine)
True
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["AuditEntry", "Base", "EvidenceRow", "MatterReview", "OPEN_TICKET", "PackVersion", "Ticket", "WorkerClaim",
           "head_revision", "migrate", "ticket_row"]


class Base(DeclarativeBase):
    pass


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(512))
    alert_id: Mapped[str] = mapped_column(String(32), index=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    risk_id: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    domain: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[str | None] = mapped_column(String(64), index=True)
    owner_post: Mapped[str] = mapped_column(String(128))
    owner_department: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(256))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    event_ids: Mapped[list] = mapped_column(JSON)
    hits: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[str] = mapped_column(String(40))
    last_seen: Mapped[str] = mapped_column(String(40))
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ack_due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    alert: Mapped[dict] = mapped_column(JSON)
    pack_version: Mapped[str | None] = mapped_column(String(32), index=True)  # that last changed the alert
    outcome: Mapped[str | None] = mapped_column(String(32))
    assignee: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_to: Mapped[str | None] = mapped_column(String(128))
    escalated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    typical_case: Mapped[bool] = mapped_column(Boolean, default=False)
    case_summary: Mapped[str | None] = mapped_column(Text)
    counterparty_id: Mapped[str | None] = mapped_column(String(128))  # of the first event behind it that names one
    counterparty_name: Mapped[str | None] = mapped_column(String(256))

    __table_args__ = (
        # One open ticket per finding; closed ones may repeat the key.
        Index("uq_tickets_open_dedup_key", "dedup_key", unique=True,
              sqlite_where=text("status != 'closed'"), postgresql_where=text("status != 'closed'")),
    )


# A look-up by dedup_key must say "open" as the partial unique index above
# does, or SQLite cannot use that index: the counterparty update without it
# went through the counterparty_id index, every unnamed ticket read per key.
OPEN_TICKET = Ticket.status != "closed"


class AuditEntry(Base):
    """One line of a ticket's audit trail: who did what, when and why. Append-only:
    no code path updates or deletes it, and database triggers refuse to."""

    __tablename__ = "ticket_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("tickets.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict | None] = mapped_column(JSON)


class EvidenceRow(Base):
    """An event behind a ticket's alert, as it arrived."""

    __tablename__ = "ticket_evidence"

    dedup_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    occurred_at: Mapped[str | None] = mapped_column(String(40))
    event: Mapped[dict] = mapped_column(JSON)


class PackVersion(Base):
    """Every rule pack version a runner has scored with (a start or a reload)."""

    __tablename__ = "rule_pack_versions"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_loaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_loaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    loads: Mapped[int] = mapped_column(Integer)
    rules: Mapped[int] = mapped_column(Integer)
    detectors: Mapped[int] = mapped_column(Integer)


class MatterReview(Base):
    """An executed matter as a review control judged it (the review rate's unit)."""

    __tablename__ = "matter_reviews"

    control_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    matter_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    matter_kind: Mapped[str] = mapped_column(String(32))
    month: Mapped[str] = mapped_column(String(7))
    executed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    reviewed: Mapped[bool] = mapped_column(Boolean)


class WorkerClaim(Base):
    """The worker that owns an input partition now (its latest claim)."""

    __tablename__ = "worker_claims"

    app_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    input_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


def ticket_row(ticket: Ticket) -> dict[str, Any]:
    return {c.name: getattr(ticket, c.name) for c in Ticket.__table__.columns}


_MIGRATING = threading.Lock()


def head_revision() -> str:
    """The newest migration's revision: each file under ``migrations/versions`` is
    named after its revision (``0010_admin_audit.py`` is ``"0010"``; a test holds
    this to Alembic's own reading of the scripts)."""
    versions = Path(__file__).parent / "migrations" / "versions"
    return max(path.name.split("_", 1)[0] for path in versions.glob("[0-9]*_*.py"))


def _at_head(engine) -> bool:
    """Whether the database is already at the newest schema."""
    from sqlalchemy import inspect

    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return False
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
    except DBAPIError:
        return False  # a database busy or not there yet: Alembic's path says why


def migrate(engine) -> None:
    """Bring the database to the newest schema (Alembic, ``monitor/cases/migrations``).

    Safe with several processes starting at once: on PostgreSQL a transaction
    advisory lock serialises them; SQLite locks the file (the caller retries).
    A database made before migrations existed is stamped as revision 0001 first.
    """
    if _at_head(engine):
        return  # the usual start: Alembic (a tenth of a second to import) is not needed
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    config = Config()
    config.set_main_option("script_location", "monitor.cases:migrations")
    with _MIGRATING, engine.begin() as conn:  # Alembic's context is process-global: one thread at a time
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7263541)"))
        config.attributes["connection"] = conn
        found = inspect(conn)
        if found.has_table("tickets") and not found.has_table("alembic_version"):
            command.stamp(config, "0001")
        command.upgrade(config, "head")
