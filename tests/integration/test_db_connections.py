"""Database connections: pooled PostgreSQL ones handed out last in, first out, and
pinged after a pause in their use, not while busy; SQLite's write-ahead log copied into
the database file in the background."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import db
from storage.db import create_engine, wal_checkpointer


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(url: str, pid: int) -> None:
    killer = create_engine(url, pool_pre_ping=False)
    try:
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await conn.commit()
    finally:
        await killer.dispose()
    await asyncio.sleep(0.05)  # the backend is gone once the signal is handled


@pytest.mark.postgres
async def test_a_connection_dropped_while_idle_is_replaced(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_IDLE", 0.1)
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        await _terminate(pg_url, first)
        await asyncio.sleep(0.15)

        second = await _backend_pid(engine)  # no error: the ping found it dead

        assert second != first
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_connection_is_pinged_after_a_pause_only(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_IDLE", 0.3)
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    pings = 0
    ping = AsyncAdapt_asyncpg_connection.ping

    def counted(self: AsyncAdapt_asyncpg_connection) -> None:
        nonlocal pings
        pings += 1
        ping(self)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    try:
        await _backend_pid(engine)
        for _ in range(5):
            await _backend_pid(engine)
        busy = pings
        await asyncio.sleep(0.35)
        await _backend_pid(engine)

        assert (busy, pings) == (0, 1)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_the_connection_returned_last_is_the_next_one_out(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as first, engine.connect() as second:
            pids = [
                int((await c.execute(text("SELECT pg_backend_pid()"))).scalar_one())
                for c in (first, second)
            ]
        # (second was returned first, then first.)
        after = [await _backend_pid(engine) for _ in range(3)]

        assert len(set(pids)) == 2
        assert after == [pids[0]] * 3  # one warm connection, not both in turn
    finally:
        await engine.dispose()


def _size(path: Path) -> int:
    return path.stat().st_size


async def test_the_sqlite_log_is_copied_into_the_database_file_in_the_background(
    sqlite_url: str,
) -> None:
    engine = create_engine(sqlite_url)
    path = Path(engine.url.database or "")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE blob_rows (data BLOB)"))
            for _ in range(200):  # 2 MB: well under the size a commit would copy itself
                await conn.execute(text("INSERT INTO blob_rows VALUES (randomblob(10000))"))
        before = _size(path)
        assert before < 1_000_000  # the rows are in the log, not yet in the file
        checkpointer = wal_checkpointer(engine)
        assert checkpointer is not None
        checkpointer.every = 0.05
        checkpointer.start()
        await asyncio.sleep(0.5)
        await checkpointer.stop()

        assert _size(path) > before + 1_900_000
        async with engine.connect() as conn:  # and the rows read back as ever
            count = (await conn.execute(text("SELECT count(*) FROM blob_rows"))).scalar_one()
        assert count == 200
    finally:
        await engine.dispose()


def test_no_checkpointer_for_postgresql_or_memory() -> None:
    assert wal_checkpointer(create_engine("sqlite+aiosqlite://")) is None
    assert wal_checkpointer(create_engine("postgresql+asyncpg://u@127.0.0.1/x")) is None
