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
    token = users.new_token("wang.fang", "ci")    # shown once
    user = users.by_token(token)                   # or users.check_password(name, password)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import JSON, DateTime, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from monitor.cases.tickets import Base

__all__ = ["ROLES", "User", "UserStore"]

ROLES = ("viewer", "officer", "head", "admin")
_hasher = PasswordHasher()


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
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 10:
            raise ValueError("a password needs at least 10 characters")
        with Session(self.engine) as session:
            session.merge(UserRow(username=username, display_name=display_name, password_hash=_hasher.hash(password),
                                  role=role, departments=list(departments), created_at=dt.datetime.now(dt.timezone.utc)))
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

    def new_token(self, username: str, label: str = "") -> str:
        token = "rw_" + secrets.token_urlsafe(32)
        with Session(self.engine) as session:
            if session.get(UserRow, username) is None:
                raise ValueError(f"no user {username}")
            session.add(TokenRow(token_hash=hashlib.sha256(token.encode()).hexdigest(), username=username, label=label,
                                 created_at=dt.datetime.now(dt.timezone.utc)))
            session.commit()
        return token

    def by_token(self, token: str) -> User | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        with Session(self.engine) as session:
            row = session.scalars(select(TokenRow).where(TokenRow.token_hash == digest)).first()
            username = row.username if row else None
        return self.get(username) if username else None
