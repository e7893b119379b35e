"""Engine creation and the per-dialect details (SQLite pragmas, insert-or-ignore)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from storage.inline_sqlite import connector


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and enforced foreign keys;
    PostgreSQL connections are pinged after a pause in their use (``pool_pre_ping=False``
    turns that off)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ":memory:"
        if database != ":memory:":
            # Inline calls instead of aiosqlite's thread hop (see storage.inline_sqlite).
            kwargs.setdefault("async_creator", connector(database))
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if parsed.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        return engine
    ping = kwargs.pop("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if ping:
        _ping_when_idle(engine)
    return engine


PING_IDLE = 1.0
"""Seconds a pooled PostgreSQL connection may sit unused before it is pinged on its next
checkout (the server restarted, a proxy dropped it): a busy service, whose connections
go straight back to work, spends no round trips on pings."""


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for idle connections only: its ping costs three
    round trips (begin, ``;``, rollback) on every checkout, as much as the work a group
    commit does. A connection that fails its ping is replaced (the pool retries)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _back(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_IDLE:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("a pooled connection failed its ping") from exc


def insert_ignore(dialect_name: str, table: Table, *conflict: str) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` for the dialect at hand."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(
            index_elements=list(conflict) or None
        )
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict) or None)
