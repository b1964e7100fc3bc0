"""Alembic migrations of the ticket database (run by ``monitor.tickets.migrate``)."""
