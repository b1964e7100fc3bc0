"""Disposal: tickets and their workflow, users and auth, notifications,
exports, reports, and the database migrations.
"""
