"""The inbox: a ticket's counterparty (from the events behind it), and the
indexes its filters, sorts and the cockpit's counts use.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

INDEXES = {
    "ix_tickets_counterparty_id": ["counterparty_id"],
    "ix_tickets_owner_department_status": ["owner_department", "status"],
    "ix_tickets_owner_post_status": ["owner_post", "status"],
    "ix_tickets_assignee": ["assignee"],
    "ix_tickets_opened_at": ["opened_at"],
    "ix_tickets_status_due_at": ["status", "due_at"],
    "ix_tickets_org_risk": ["org_id", "risk_id"],
    "ix_tickets_rule_id": ["rule_id"],
}


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("counterparty_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("counterparty_name", sa.String(256), nullable=True))
    for name, columns in INDEXES.items():
        op.create_index(name, "tickets", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("counterparty_name")
        batch.drop_column("counterparty_id")
