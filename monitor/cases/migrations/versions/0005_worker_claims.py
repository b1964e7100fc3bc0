"""Which worker owns each input partition: ticket writes of a worker that lost
its partitions (a zombie) are refused.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "worker_claims",
        sa.Column("app_id", sa.String(128), primary_key=True),
        sa.Column("input_partition", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    )
