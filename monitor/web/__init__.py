"""The web app for compliance managers (FastAPI, Jinja templates)."""
