"""Alembic migrations: one revision per schema change, each runs on SQLite and PostgreSQL."""
