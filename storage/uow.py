"""The unit of work: one transaction on one connection, with every repository on it.

On SQLite units of work take turns in-process (one writer, and a deferred transaction
that reads and then writes could lose an update); PostgreSQL relies on row locks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cached_property
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from funnels.cohorts.ports import CohortsTx
from funnels.kernel.uow import UnitOfWork
from funnels.ladder.ports import LadderTx, LinksTx, ProofsTx
from funnels.ops.ports import BoardTx, KeysTx, KpisTx, OpsTx, ReportsTx, RollupsTx
from funnels.people.ports import PeopleTx
from funnels.warmup.ports import WarmupTx
from storage.cohorts import SqlCohorts
from storage.envelopes import SqlEnvelopes
from storage.groups import SqlMemberGroups
from storage.kpis import SqlKpis
from storage.ladder import SqlEvents, SqlLedger, SqlTasks
from storage.members import SqlMembers
from storage.ops import SqlApiKeys, SqlOpsActions, SqlReports
from storage.payouts import SqlPayouts
from storage.people import SqlLinks, SqlRegions, SqlUsers
from storage.personal_links import SqlPersonalLinks
from storage.proofs import SqlProofs
from storage.reminders import SqlReminders
from storage.rollups import RollupChanges, SqlRollups
from storage.steps import SqlSteps
from storage.tracked_links import SqlTrackedLinks
from storage.updates import SqlUpdates

R = TypeVar("R")


class _Repository(Generic[R]):
    """A repository of the unit of work, made from its connection when first used (and
    kept on it): a unit of work touches two or three of them, and the hot paths open
    thousands a second."""

    def __init__(self, make: Callable[[AsyncConnection], R]) -> None:
        self._make = make

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, tx: SqlTransaction, owner: type | None = None) -> R:
        repository = tx.__dict__[self._name] = self._make(tx.conn)
        return repository


class SqlTransaction:
    """Every repository on one connection."""

    cohorts = _Repository(SqlCohorts)
    steps = _Repository(SqlSteps)
    users = _Repository(SqlUsers)
    rollups = _Repository(SqlRollups)
    kpis = _Repository(SqlKpis)
    envelopes = _Repository(SqlEnvelopes)
    tasks = _Repository(SqlTasks)
    events = _Repository(SqlEvents)
    ledger = _Repository(SqlLedger)
    links = _Repository(SqlLinks)
    personal_links = _Repository(SqlPersonalLinks)
    regions = _Repository(SqlRegions)
    updates = _Repository(SqlUpdates)
    reports = _Repository(SqlReports)
    proofs = _Repository(SqlProofs)
    payouts = _Repository(SqlPayouts)
    tracked_links = _Repository(SqlTrackedLinks)
    member_groups = _Repository(SqlMemberGroups)
    reminders = _Repository(SqlReminders)
    api_keys = _Repository(SqlApiKeys)
    ops_actions = _Repository(SqlOpsActions)

    def __init__(self, conn: AsyncConnection, on_rewards: Callable[[], None] | None = None) -> None:
        self.conn = conn
        self._on_rewards = on_rewards
        self.rollup_changes = RollupChanges()
        self._committed = False

    @cached_property
    def members(self) -> SqlMembers:
        return SqlMembers(self.conn, self.rollup_changes)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[AsyncTransaction]:
        async with self.conn.begin_nested() as nested:
            yield nested

    async def commit(self) -> None:
        await self.rollup_changes.write(self.conn)
        await self.conn.commit()
        self._committed = True
        payouts = self.__dict__.get("payouts")  # only if this unit of work used it
        if payouts is not None and payouts.touched and self._on_rewards is not None:
            payouts.touched = False
            self._on_rewards()


class SqlStore:
    """The domain's unit of work (:class:`funnels.kernel.uow.UnitOfWork`) over an async
    SQLAlchemy engine; its transaction plays every slice's role (:func:`_plays_every_role`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer, and a deferred transaction that reads and then writes
        # can lose an update to another one; in-process, units of work on SQLite take
        # turns. PostgreSQL relies on row locks (FOR UPDATE / SKIP LOCKED) instead.
        self._turns = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self.on_rewards: Callable[[], None] | None = None
        """Called after a commit that recorded a task reward or queued a payout: the
        service wakes its payout deliverer with it (``bot/payouts.py``)."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        if self._turns is None:
            async with self._connection() as tx:
                yield tx
            return
        async with self._turns, self._connection() as tx:
            yield tx

    @asynccontextmanager
    async def one_statement(self) -> AsyncIterator[SqlTransaction]:
        """PostgreSQL: autocommit (no BEGIN and COMMIT round trips). SQLite: a
        transaction (its statements run inline, so it costs no round trips)."""
        if self._turns is not None:
            async with self.transaction() as tx:
                yield tx
            return
        async with self._connection(autocommit=True) as tx:
            yield tx

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SqlTransaction]:
        """PostgreSQL: a read-only REPEATABLE READ transaction (one snapshot for all its
        statements). SQLite: a transaction, which reads one snapshot already (and takes
        its turn)."""
        if self._turns is not None:
            async with self.transaction() as tx:
                yield tx
            return
        async with self._connection(isolation="REPEATABLE READ") as tx:
            await tx.conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield tx

    @asynccontextmanager
    async def _connection(
        self, *, autocommit: bool = False, isolation: str | None = None
    ) -> AsyncIterator[SqlTransaction]:
        async with self.engine.connect() as conn:
            if autocommit:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            elif isolation is not None:
                await conn.execution_options(isolation_level=isolation)
            tx = SqlTransaction(conn, self.on_rewards)
            try:
                yield tx
            finally:
                if not tx._committed and conn.in_transaction():
                    await conn.rollback()


def _plays_every_role(store: SqlStore) -> None:
    """Never called: mypy checks here that the SQL unit of work plays the role each slice
    of the domain asks for (its ``ports`` module), so a repository method a use case
    needs and storage lacks (or types differently) fails the type check, not a run."""
    roles: tuple[
        UnitOfWork[CohortsTx],
        UnitOfWork[WarmupTx],
        UnitOfWork[LadderTx],
        UnitOfWork[PeopleTx],
        UnitOfWork[OpsTx],
        UnitOfWork[ReportsTx],
        UnitOfWork[ProofsTx],
        UnitOfWork[LinksTx],
        UnitOfWork[KeysTx],
        UnitOfWork[KpisTx],
        UnitOfWork[RollupsTx],
        UnitOfWork[BoardTx],
    ] = (store, store, store, store, store, store, store, store, store, store, store, store)
    del roles
