"""Tickets and the rule pack versions that scored.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dedup_key", sa.String(512), nullable=False),
        sa.Column("alert_id", sa.String(32), nullable=False, index=True),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("risk_id", sa.String(32), nullable=False, index=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("domain", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(64), index=True),
        sa.Column("owner_post", sa.String(128), nullable=False),
        sa.Column("owner_department", sa.String(128)),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("event_ids", sa.JSON, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.String(40), nullable=False),
        sa.Column("last_seen", sa.String(40), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ack_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("alert", sa.JSON, nullable=False),
        sa.Column("pack_version", sa.String(32), index=True),
    )
    # One open ticket per finding; closed ones may repeat the key.
    op.create_index("uq_tickets_open_dedup_key", "tickets", ["dedup_key"], unique=True,
                    sqlite_where=sa.text("status != 'closed'"), postgresql_where=sa.text("status != 'closed'"))
    op.create_table(
        "rule_pack_versions",
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("first_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loads", sa.Integer, nullable=False),
        sa.Column("rules", sa.Integer, nullable=False),
        sa.Column("detectors", sa.Integer, nullable=False),
    )
