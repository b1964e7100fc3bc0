"""The disposal workflow: outcome, assignee, escalation, typical cases, and the
append-only audit trail (triggers refuse UPDATE and DELETE on it).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("outcome", sa.String(32)))
        batch.add_column(sa.Column("assignee", sa.String(128)))
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("escalated_to", sa.String(128)))
        batch.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("typical_case", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("case_summary", sa.Text))
    op.create_table(
        "ticket_audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.JSON),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION ticket_audit_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'ticket_audit is append-only'; END; $$ LANGUAGE plpgsql""")
        op.execute("""CREATE TRIGGER ticket_audit_no_update BEFORE UPDATE OR DELETE ON ticket_audit
                      FOR EACH ROW EXECUTE FUNCTION ticket_audit_append_only()""")
        op.execute("""CREATE TRIGGER ticket_audit_no_truncate BEFORE TRUNCATE ON ticket_audit
                      FOR EACH STATEMENT EXECUTE FUNCTION ticket_audit_append_only()""")
    else:
        op.execute("""CREATE TRIGGER ticket_audit_no_update BEFORE UPDATE ON ticket_audit
                      BEGIN SELECT RAISE(ABORT, 'ticket_audit is append-only'); END""")
        op.execute("""CREATE TRIGGER ticket_audit_no_delete BEFORE DELETE ON ticket_audit
                      BEGIN SELECT RAISE(ABORT, 'ticket_audit is append-only'); END""")
