"""The events behind each ticket's alert.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "ticket_evidence",
        sa.Column("dedup_key", sa.String(512), primary_key=True),
        sa.Column("event_id", sa.String(256), primary_key=True),
        sa.Column("occurred_at", sa.String(40)),
        sa.Column("event", sa.JSON, nullable=False),
    )
