"""The unit of work: one transaction on one connection, with every repository on it.

On SQLite units of work take turns in-process (one writer, and a deferred transaction
that reads and then writes could lose an update); PostgreSQL relies on row locks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.cohorts import SqlCohorts
from storage.envelopes import SqlEnvelopes
from storage.ladder import SqlEvents, SqlLedger, SqlTasks
from storage.members import SqlMembers
from storage.people import SqlLinks, SqlRegions, SqlUsers
from storage.steps import SqlSteps
from storage.updates import SqlUpdates


class SqlTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.cohorts = SqlCohorts(conn)
        self.steps = SqlSteps(conn)
        self.users = SqlUsers(conn)
        self.members = SqlMembers(conn)
        self.envelopes = SqlEnvelopes(conn)
        self.tasks = SqlTasks(conn)
        self.events = SqlEvents(conn)
        self.ledger = SqlLedger(conn)
        self.links = SqlLinks(conn)
        self.regions = SqlRegions(conn)
        self.updates = SqlUpdates(conn)
        self._committed = False

    async def commit(self) -> None:
        await self.conn.commit()
        self._committed = True


class SqlStore:
    """The :class:`funnels.ports.Store` over an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer, and a deferred transaction that reads and then writes
        # can lose an update to another one; in-process, units of work on SQLite take
        # turns. PostgreSQL relies on row locks (FOR UPDATE / SKIP LOCKED) instead.
        self._turns = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        if self._turns is None:
            async with self._connection() as tx:
                yield tx
            return
        async with self._turns, self._connection() as tx:
            yield tx

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[SqlTransaction]:
        async with self.engine.connect() as conn:
            tx = SqlTransaction(conn)
            try:
                yield tx
            finally:
                if not tx._committed and conn.in_transaction():
                    await conn.rollback()
