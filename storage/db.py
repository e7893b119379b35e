"""Engine creation and the per-dialect details (SQLite pragmas, insert-or-ignore)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from storage.inline_sqlite import connector

log = logging.getLogger("funnelbot.storage")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and enforced foreign keys;
    PostgreSQL connections are pooled last in, first out, and pinged after a pause in
    their use (``pool_pre_ping=False`` turns that off)."""
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
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        return engine
    ping = kwargs.pop("pool_pre_ping", True)
    # The connection returned last is the next one out: the few a process keeps busy
    # stay warm (asyncpg's prepared statements, the server's plans for them), where a
    # queue would hand every statement to each pooled connection in turn, to prepare
    # and plan on each.
    kwargs.setdefault("pool_use_lifo", True)
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


WAL_AUTOCHECKPOINT_PAGES = 10_000
"""Pages (4 KiB) the SQLite write-ahead log may grow to before a commit copies it into
the database file itself (SQLite's default is 1,000). That copy, with its fsync, runs
inside the committing call, which here is the event loop's thread, and stalls every
request for as long as the disk takes; :class:`WalCheckpointer` does it in a thread
long before this size is reached, and the limit stays for processes without one."""


class WalCheckpointer:
    """SQLite: copies the write-ahead log into the database file every ``every`` seconds
    (``PRAGMA wal_checkpoint(PASSIVE)``: as far as it can without waiting for anyone),
    on a connection of its own in a worker thread, so the disk's flushes never stall
    the event loop. ``funnelbot run`` keeps one for the embedded database."""

    def __init__(self, path: str, every: float = 1.0) -> None:
        self.path = path
        self.every = every
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wal-checkpoint")

    async def _run(self) -> None:
        conn = await asyncio.to_thread(sqlite3.connect, self.path, check_same_thread=False)
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.every)
                try:
                    await asyncio.to_thread(self.checkpoint, conn)
                except sqlite3.Error as exc:  # tried again next time; commits go on
                    log.warning("could not checkpoint the SQLite log: %s", exc)
        finally:
            await asyncio.to_thread(conn.close)

    @staticmethod
    def checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
        """(busy, frames in the log, frames copied), as SQLite reports them."""
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(copied)

    async def stop(self) -> None:
        """After the checkpoint in hand (one more runs on the way out)."""
        self._stopping.set()
        if self._task is not None:
            await self._task


def wal_checkpointer(engine: AsyncEngine) -> WalCheckpointer | None:
    """A checkpointer for the engine's SQLite database file (None for PostgreSQL or an
    in-memory database)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return WalCheckpointer(url.database)
