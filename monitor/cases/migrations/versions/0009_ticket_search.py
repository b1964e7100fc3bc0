"""The inbox's search, indexed on PostgreSQL: a trigram index (pg_trgm) on the
text a search looks in, so that ``q=恒达建材`` does not read every ticket.

The expression is the inbox's (``monitor.cases.inbox.SEARCH_SQL``), written out
here as it was when this revision was made. Where the extension cannot be
created (a role without the right), the search still works, by a scan.

Revision ID: 0009
Revises: 0008
"""

import logging

from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0009"
down_revision = "0008"

SEARCH_SQL = ("lower(title || ' ' || message || ' ' || dedup_key || ' ' || coalesce(counterparty_name, '') || ' ' || "
              "coalesce(counterparty_id, ''))")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    except DBAPIError as err:
        logging.getLogger("riskwatch.tickets").warning(
            "pg_trgm could not be created (%s): the inbox's search reads every ticket", str(err).splitlines()[0])
        return
    # The extension lives in one schema per database (wherever it was first created): name its operator class there.
    schema = bind.exec_driver_sql("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                  "WHERE extname = 'pg_trgm'").scalar()
    bind.exec_driver_sql(f"CREATE INDEX ix_tickets_search ON tickets USING gin (({SEARCH_SQL}) {schema}.gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_tickets_search")
