"""Users of riskwatch serve: roles, departments, password hashes and API tokens.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(128)),
        sa.Column("password_hash", sa.String(256), nullable=False),  # argon2id
        sa.Column("role", sa.String(16), nullable=False),  # viewer | officer | head | admin
        sa.Column("departments", sa.JSON, nullable=False),  # an officer sees these departments' tickets
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),  # sha256 of the token; the token itself is shown once
        sa.Column("username", sa.String(64), sa.ForeignKey("users.username"), nullable=False, index=True),
        sa.Column("label", sa.String(128)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
