"""Server-side web sessions (logout ends one for good) and API tokens that
expire and can be revoked. Tokens made before this had no expiry: they now
expire 90 days after they were made.

Revision ID: 0006
Revises: 0005
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),  # sha256 of the id in the signed cookie
        sa.Column("username", sa.String(64), sa.ForeignKey("users.username"), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True)))
    tokens = sa.table("api_tokens", sa.column("token_hash", sa.String), sa.column("created_at", sa.DateTime(timezone=True)),
                      sa.column("expires_at", sa.DateTime(timezone=True)))
    connection = op.get_bind()
    for token_hash, created_at in connection.execute(sa.select(tokens.c.token_hash, tokens.c.created_at)).all():
        connection.execute(tokens.update().where(tokens.c.token_hash == token_hash)
                           .values(expires_at=created_at + dt.timedelta(days=90)))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
    op.drop_table("web_sessions")
