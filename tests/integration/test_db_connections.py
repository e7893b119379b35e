"""Pooled PostgreSQL connections: pinged after a pause in their use, not while busy."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import db
from storage.db import create_engine

pytestmark = pytest.mark.postgres


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
