"""Executed matters as the review controls judged them: what the review rate
(审查率) counts, by org, matter kind and month.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "matter_reviews",
        sa.Column("control_id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(128), primary_key=True),
        sa.Column("matter_id", sa.String(256), primary_key=True),
        sa.Column("matter_kind", sa.String(32), nullable=False),
        sa.Column("month", sa.String(7), nullable=False, index=True),  # YYYY-MM of the execution, China Standard Time
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed", sa.Boolean, nullable=False),  # every required step passed before execution
    )


def downgrade() -> None:
    op.drop_table("matter_reviews")
