"""The rollup tables in SQL: members per cohort, local day and funnel stage
(``funnel_days``), and messages and writers per cohort and local day
(``activity_days``).

They change in the transaction that moves the members: the member repository notes each
change in the transaction's :class:`RollupChanges`, which is written just before the
commit, every row in one order (so two transactions adding to the same rows wait for
each other instead of deadlocking, and a batch of a thousand events adds to each row
once). ``funnelbot stats reconcile`` recounts them from the members' rows
(:class:`SqlRollups`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import date
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from funnels.kernel.rollups import FunnelCounts, StageTimes
from funnels.kernel.stages import Stage
from storage.sql import Repo, prepared, unnested
from storage.tables import (
    activity_days as _ad,
    cohort_members as _m,
    cohorts as _c,
    funnel_days as _fd,
    member_activity as _a,
)

STAGE_COLUMNS: dict[Stage, str] = {
    Stage.JOINED: "joined_at",
    Stage.ENGAGED: "engaged_at",
    Stage.REPLIED: "replied_at",
    Stage.ADMITTED: "admitted_at",
    Stage.TASKED: "tasked_at",
    Stage.SOLD: "sold_at",
    Stage.SHOPKEEPER: "shopkeeper_at",
    Stage.SUPERVISOR: "supervisor_at",
}
TIME_COLUMNS = [_m.c[name] for name in STAGE_COLUMNS.values()]


def stage_times(row: Any) -> dict[Stage, Any]:
    """A member row's stage timestamps (a row with the ``TIME_COLUMNS``)."""
    mapping = row._mapping
    return {stage: mapping[name] for stage, name in STAGE_COLUMNS.items()}


class RollupChanges:
    """What one transaction changes in the rollups, written by :meth:`write` before it
    commits."""

    def __init__(self) -> None:
        self.funnel: Counter[tuple[int, date, int]] = Counter()
        self.messages: Counter[tuple[int, date]] = Counter()
        self.writers: Counter[tuple[int, date]] = Counter()

    def add_funnel(self, cohort_id: int, moves: FunnelCounts) -> None:
        for (day, stage), n in moves.items():
            self.funnel[(cohort_id, day, int(stage))] += n

    def add_activity(self, cohort_id: int, day: date, messages: int, writers: int) -> None:
        self.messages[(cohort_id, day)] += messages
        self.writers[(cohort_id, day)] += writers

    async def write(self, conn: AsyncConnection) -> None:
        dialect = conn.dialect.name
        funnel = [
            {"cohort_id": c, "day": d, "stage": s, "members": n}
            for (c, d, s), n in sorted(self.funnel.items())
            if n
        ]
        activity = [
            {"cohort_id": c, "day": d, "messages": n, "members": self.writers[(c, d)]}
            for (c, d), n in sorted(self.messages.items())
            if n or self.writers[(c, d)]
        ]
        self.funnel.clear()
        self.messages.clear()
        self.writers.clear()
        for table, rows in ((_fd, funnel), (_ad, activity)):
            if not rows:
                continue
            if dialect == "postgresql":
                # One statement and one round trip, the rows as one array per column.
                statement = prepared(f"rollup:{table.name}", dialect, partial(_add_pg, table))
                await conn.execute(statement, {c: [r[c] for r in rows] for c in rows[0]})
            else:
                statement = prepared(f"rollup:{table.name}", dialect, partial(_add_sqlite, table))
                await conn.execute(statement, rows)


def _adding(stmt: Any, table: Any) -> Any:
    """``… ON CONFLICT (key) DO UPDATE SET figure = figure + excluded.figure``."""
    keys = [c.name for c in table.primary_key.columns]
    figures = {c.name: c + stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=keys, set_=figures)


def _add_sqlite(table: Any) -> Any:
    from sqlalchemy.dialects.sqlite import insert

    return _adding(insert(table), table)


def _add_pg(table: Any) -> Any:
    """``INSERT … SELECT * FROM unnest(:cohort_id, :day, …)``, adding on conflict."""
    from sqlalchemy.dialects.postgresql import insert

    names = [c.name for c in table.columns]
    rows = unnested(*((n, n, table.c[n]) for n in names))
    stmt = insert(table).from_select(names, select(*(rows.c[n] for n in names)))
    return _adding(stmt, table)


async def cohort_zone(conn: AsyncConnection, cohort_id: int) -> ZoneInfo:
    statement = prepared(
        "cohort_zone",
        conn.dialect.name,
        lambda: select(_c.c.timezone).where(_c.c.id == bindparam("cohort_id")),
    )
    name = (await conn.execute(statement, {"cohort_id": cohort_id})).scalar_one()
    return ZoneInfo(name)


async def read_funnel(conn: AsyncConnection, cohort_id: int) -> FunnelCounts:
    """A cohort's members per (local day, stage) entered."""
    rows = await conn.execute(
        select(_fd.c.day, _fd.c.stage, _fd.c.members).where(
            _fd.c.cohort_id == cohort_id, _fd.c.members != 0
        )
    )
    return Counter({(r.day, Stage(r.stage)): int(r.members) for r in rows})


async def read_activity(conn: AsyncConnection, cohort_id: int) -> dict[date, tuple[int, int]]:
    """A cohort's local days -> (messages, members who wrote)."""
    rows = await conn.execute(
        select(_ad.c.day, _ad.c.messages, _ad.c.members)
        .where(_ad.c.cohort_id == cohort_id)
        .order_by(_ad.c.day)
    )
    return {r.day: (int(r.messages), int(r.members)) for r in rows if r.messages or r.members}


class SqlRollups(Repo):
    """Reads the rollups, and recounts and rewrites them (``funnelbot stats reconcile``)."""

    async def funnel(self, cohort_id: int) -> FunnelCounts:
        return await read_funnel(self.conn, cohort_id)

    async def activity(self, cohort_id: int) -> dict[date, tuple[int, int]]:
        return await read_activity(self.conn, cohort_id)

    async def cohort_ids(self) -> list[int]:
        return list((await self.conn.execute(select(_c.c.id).order_by(_c.c.id))).scalars())

    async def zone(self, cohort_id: int) -> ZoneInfo:
        return await cohort_zone(self.conn, cohort_id)

    async def member_times(self, cohort_id: int) -> AsyncIterator[StageTimes]:
        """Every member's stage timestamps."""
        result = await self.conn.execute(select(*TIME_COLUMNS).where(_m.c.cohort_id == cohort_id))
        for row in result:
            yield stage_times(row)

    async def activity_recount(self, cohort_id: int) -> dict[date, tuple[int, int]]:
        rows = await self.conn.execute(
            select(_a.c.day, func.sum(_a.c.messages), func.count())
            .where(_a.c.cohort_id == cohort_id)
            .group_by(_a.c.day)
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    async def correct(
        self,
        cohort_id: int,
        funnel: Mapping[tuple[date, Stage], int],
        activity: Mapping[date, tuple[int, int]],
    ) -> None:
        """Add differences to the cohort's rollups (not overwrite them: rows that
        moved since they were recounted keep those moves)."""
        changes = RollupChanges()
        changes.add_funnel(cohort_id, Counter(funnel))
        for day, (messages, writers) in activity.items():
            changes.add_activity(cohort_id, day, messages, writers)
        await changes.write(self.conn)
