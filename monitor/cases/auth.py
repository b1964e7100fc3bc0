"""Users, roles and API tokens for ``riskwatch serve``.

Passwords are hashed with argon2id (argon2-cffi); API tokens are random and
only their SHA-256 is stored. Roles:

========== ==================================================================
viewer     reads every ticket; changes nothing
officer    合规管理员: reads and works the tickets of their departments only
head       compliance head: reads and works every ticket
admin      everything, and manages users
========== ==================================================================

    users = UserStore(engine)
    users.add("wang.fang", "s3cret-pass", "officer", ["财务资金部"])
    token = users.new_token("wang.fang", "ci")    # shown once; expires in 90 days
    user = users.by_token(token)                   # or users.check_password(name, password)
    users.revoke_tokens("wang.fang", "ci")         # every token of that label, at once

Web sessions live here too: the cookie carries only a random id, whose hash
is a row that logout deletes, so a copied cookie dies with the session.

    sid = users.open_session("wang.fang")          # into the signed cookie
    users.session_user(sid)                        # the User, until logout or expiry
    users.end_session(sid)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from monitor.cases.schema import Base

__all__ = ["ROLES", "SESSION_HOURS", "TOKEN_DAYS", "User", "UserStore"]

ROLES = ("viewer", "officer", "head", "admin")
TOKEN_DAYS = 90  # an API token's life unless told otherwise
MAX_TOKEN_DAYS = 730
SESSION_HOURS = 8  # a web session's life from login
_hasher = PasswordHasher()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)  # SQLite returns naive UTC


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    departments: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class TokenRow(Base):
    __tablename__ = "api_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), ForeignKey("users.username"))
    label: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AdminAuditRow(Base):
    __tablename__ = "admin_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[dict | None] = mapped_column(JSON)


class SessionRow(Base):
    __tablename__ = "web_sessions"

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), ForeignKey("users.username"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class User:
    username: str
    role: str
    departments: tuple[str, ...]
    display_name: str | None = None

    def can_read(self, ticket: dict) -> bool:
        return self.role in ("viewer", "head", "admin") or ticket.get("owner_department") in self.departments

    def can_act(self, ticket: dict) -> bool:
        if self.role in ("head", "admin"):
            return True
        return self.role == "officer" and ticket.get("owner_department") in self.departments


class UserStore:
    """Users and tokens in the ticket database (schema from the migrations)."""

    def __init__(self, engine):
        self.engine = engine

    def add(self, username: str, password: str, role: str, departments: list[str], display_name: str | None = None) -> User:
        """Add a user, or replace one: a replaced user's web sessions end."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 10:
            raise ValueError("a password needs at least 10 characters")
        if not username or len(username) > 64:
            raise ValueError("a username has 1 to 64 characters")
        with Session(self.engine) as session:
            session.merge(UserRow(username=username, display_name=display_name, password_hash=_hasher.hash(password),
                                  role=role, departments=list(departments), created_at=_now()))
            session.execute(delete(SessionRow).where(SessionRow.username == username))
            session.commit()
        return User(username, role, tuple(departments), display_name)

    def get(self, username: str) -> User | None:
        with Session(self.engine) as session:
            row = session.get(UserRow, username)
            return User(row.username, row.role, tuple(row.departments), row.display_name) if row else None

    def check_password(self, username: str, password: str) -> User | None:
        with Session(self.engine) as session:
            row = session.get(UserRow, username)
            if row is None:
                _hasher.hash(password)  # the same work whether or not the user exists
                return None
            try:
                _hasher.verify(row.password_hash, password)
            except (VerificationError, InvalidHashError):
                return None
            return User(row.username, row.role, tuple(row.departments), row.display_name)

    def assignable(self, assignee: str, ticket: dict) -> User:
        """The user ``assignee`` if a ticket may be given to them: one who exists and
        whose role may work it (an officer of its department, a head, an admin)."""
        user = self.get(assignee)
        if user is None:
            raise ValueError(f"no user {assignee}")
        if not user.can_act(ticket):
            raise ValueError(f"{assignee} ({user.role}) may not work tickets of {ticket.get('owner_department')}")
        return user

    def new_token(self, username: str, label: str = "", days: int = TOKEN_DAYS) -> str:
        """A new token for ``username``, valid for ``days`` (1 to 730); shown once, kept as its hash."""
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise ValueError(f"a token lives 1 to {MAX_TOKEN_DAYS} days")
        token = "rw_" + secrets.token_urlsafe(32)
        now = _now()
        with Session(self.engine) as session:
            if session.get(UserRow, username) is None:
                raise ValueError(f"no user {username}")
            session.add(TokenRow(token_hash=_hash(token), username=username, label=label, created_at=now,
                                 expires_at=now + dt.timedelta(days=days)))
            session.commit()
        return token

    def by_token(self, token: str, now: dt.datetime | None = None) -> User | None:
        """The user of a live token: not revoked, not expired."""
        now = now or _now()
        with Session(self.engine) as session:
            row = session.get(TokenRow, _hash(token))
            live = row is not None and row.revoked_at is None and row.expires_at is not None and _utc(row.expires_at) > now
            username = row.username if live else None
        return self.get(username) if username else None

    def tokens(self, username: str) -> list[dict]:
        """A user's tokens (never the tokens themselves): label, made, expires, revoked."""
        with Session(self.engine) as session:
            rows = session.scalars(select(TokenRow).where(TokenRow.username == username).order_by(TokenRow.created_at))
            return [{"label": r.label or "", "created_at": _utc(r.created_at),
                     "expires_at": _utc(r.expires_at) if r.expires_at else None,
                     "revoked_at": _utc(r.revoked_at) if r.revoked_at else None} for r in rows]

    def revoke_tokens(self, username: str, label: str | None = None) -> int:
        """Revoke a user's live tokens (those with ``label`` only, when given); returns how many."""
        query = update(TokenRow).where(TokenRow.username == username, TokenRow.revoked_at.is_(None))
        if label is not None:
            query = query.where(TokenRow.label == label)
        with Session(self.engine) as session:
            count = session.execute(query.values(revoked_at=_now())).rowcount
            session.commit()
        return count

    # --- administration (the web's admin pages; each change in the audit trail) ----------------
    def users(self) -> list[dict]:
        """Every user with their live tokens' count, by name."""
        now = _now()
        with Session(self.engine) as session:
            live = dict(session.execute(select(TokenRow.username, func.count()).where(
                TokenRow.revoked_at.is_(None), TokenRow.expires_at > now).group_by(TokenRow.username)).all())
            return [{"username": r.username, "display_name": r.display_name, "role": r.role,
                     "departments": list(r.departments), "created_at": _utc(r.created_at), "tokens": live.get(r.username, 0)}
                    for r in session.scalars(select(UserRow).order_by(UserRow.username))]

    def update(self, username: str, role: str, departments: list[str], display_name: str | None) -> User:
        """Change a user's role, departments or name; their password and sessions stay (each
        request reads the user anew, so the change holds from their next click)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with Session(self.engine) as session:
            row = session.get(UserRow, username)
            if row is None:
                raise ValueError(f"no user {username}")
            row.role, row.departments, row.display_name = role, list(departments), display_name
            session.commit()
        return User(username, role, tuple(departments), display_name)

    def set_password(self, username: str, password: str) -> None:
        """A new password (at least 10 characters); every session of the user ends."""
        if len(password) < 10:
            raise ValueError("a password needs at least 10 characters")
        with Session(self.engine) as session:
            row = session.get(UserRow, username)
            if row is None:
                raise ValueError(f"no user {username}")
            row.password_hash = _hasher.hash(password)
            session.execute(delete(SessionRow).where(SessionRow.username == username))
            session.commit()

    def record(self, actor: str, action: str, target: str, detail: dict | None = None) -> None:
        with Session(self.engine) as session:
            session.add(AdminAuditRow(at=_now(), actor=actor, action=action, target=target, detail=detail))
            session.commit()

    def admin_audit(self, limit: int = 200) -> list[dict]:
        """The newest administration changes first."""
        with Session(self.engine) as session:
            rows = session.scalars(select(AdminAuditRow).order_by(AdminAuditRow.id.desc()).limit(limit))
            return [{"at": _utc(r.at), "actor": r.actor, "action": r.action, "target": r.target, "detail": r.detail or {}}
                    for r in rows]

    # --- web sessions ---------------------------------------------------------------------
    def open_session(self, username: str, hours: float = SESSION_HOURS) -> str:
        """A new session for a user who just logged in; the id goes into the cookie."""
        sid = secrets.token_urlsafe(32)
        now = _now()
        with Session(self.engine) as session:
            session.execute(delete(SessionRow).where(SessionRow.expires_at < now))  # the dead ones, while here
            session.add(SessionRow(session_hash=_hash(sid), username=username, created_at=now,
                                   expires_at=now + dt.timedelta(hours=hours)))
            session.commit()
        return sid

    def session_user(self, sid: str) -> User | None:
        with Session(self.engine) as session:
            row = session.get(SessionRow, _hash(sid))
            username = row.username if row is not None and _utc(row.expires_at) > _now() else None
        return self.get(username) if username else None

    def end_session(self, sid: str) -> None:
        with Session(self.engine) as session:
            session.execute(delete(SessionRow).where(SessionRow.session_hash == _hash(sid)))
            session.commit()
