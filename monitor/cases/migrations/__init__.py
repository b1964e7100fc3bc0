"""Alembic migrations of the ticket database (run by ``monitor.cases.schema.migrate``)."""
