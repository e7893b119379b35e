"""Persistence: SQLAlchemy models and the repositories behind the domain's Protocols.

The only package with SQL. Runs on SQLite (embedded default) and PostgreSQL.
"""
