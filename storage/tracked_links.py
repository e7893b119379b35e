"""Tracked links in SQL: members' link codes, fan locks (first touch wins), and the
installation's secrets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select

from funnels.kernel.codes import LINK_CODE_LENGTH, new_code
from funnels.kernel.records import EventIfHolder, FanLockRequest, TrackedLinkRecord
from storage.db import insert_ignore
from storage.inbound import (
    EVENT_ARRAYS,
    INSERT_EVENTS,
    SELECT_EVENT_ROW,
    event_arrays,
    store_events,
)
from storage.sql import (
    ROWS_PER_STATEMENT,
    Repo,
    driver_value,
    insert_many_returning,
    one_of,
    prepared,
)
from storage.tables import (
    fan_locks as _fl,
    installation_secrets as _s,
    tracked_links as _tl,
    users as _u,
)

_LOCK_FANS_AND_STORE = f"""
WITH holders AS (
    INSERT INTO fan_locks (cohort_id, visitor, user_id, code, locked_at)
    SELECT cohort_id, visitor, user_id, code, $2
    FROM unnest($9::bigint[], $10::varchar[], $11::bigint[], $12::varchar[])
         AS w(cohort_id, visitor, user_id, code)
    ON CONFLICT (cohort_id, visitor) DO UPDATE SET user_id = fan_locks.user_id
    RETURNING cohort_id, visitor, user_id
)
{INSERT_EVENTS}{SELECT_EVENT_ROW}
FROM unnest({EVENT_ARRAYS}, $13::bigint[], $14::varchar[], $15::bigint[]) WITH ORDINALITY
     AS e(event_id, type, occurred_at, data, member_ref, telegram_user_id,
          if_cohort, if_visitor, if_user, n)
WHERE e.if_user IS NULL OR EXISTS (
    SELECT FROM holders AS h
    WHERE h.cohort_id = e.if_cohort AND h.visitor = e.if_visitor AND h.user_id = e.if_user
)
ORDER BY e.n
ON CONFLICT (source, event_id) DO NOTHING
RETURNING id
"""
"""Fan locks and events on PostgreSQL, one statement. The locks first: a visitor locked
before keeps their holder (the update writes back the value it has), and the update is
what makes ``RETURNING`` give the holder of every visitor asked about, new or not,
through the key's index, with no read of the table a cached plan could make a scan of
while it is small (and keep as it grows). Then the events whose holder condition holds.
Parameters: source and time ($1, $2), the events' arrays ($3 to $8), the locks' ($9 to
$12, one per visitor), the events' holder conditions ($13 to $15)."""


class SqlTrackedLinks(Repo):
    async def by_code(self, code: str) -> TrackedLinkRecord | None:
        statement = prepared(
            "tracked_link_by_code",
            self.dialect,
            lambda: (
                select(_tl.c.cohort_id, _tl.c.user_id, _tl.c.task_id, _u.c.ref_code)
                .join(_u, _u.c.id == _tl.c.user_id)
                .where(_tl.c.code == bindparam("code"))
            ),
        )
        row = (await self.conn.execute(statement, {"code": code})).first()
        if row is None:
            return None
        return TrackedLinkRecord(code, row.cohort_id, row.user_id, row.ref_code, row.task_id)

    async def ensure(
        self, cohort_id: int, user_id: int, task_ids: Sequence[str], at: datetime
    ) -> dict[str, str]:
        wanted = sorted(set(task_ids))
        found = await self._codes(cohort_id, user_id, wanted)
        for _ in range(5):  # a new code that collides is not inserted: try again
            missing = [t for t in wanted if t not in found]
            if not missing:
                break
            rows = [
                {
                    "code": new_code(LINK_CODE_LENGTH),
                    "cohort_id": cohort_id,
                    "user_id": user_id,
                    "task_id": task_id,
                    "created_at": at,
                }
                for task_id in missing
            ]
            await self.conn.execute(insert_ignore(self.dialect, _tl), rows)
            found = await self._codes(cohort_id, user_id, wanted)
        return found

    async def _codes(self, cohort_id: int, user_id: int, task_ids: list[str]) -> dict[str, str]:
        rows = await self.conn.execute(
            select(_tl.c.task_id, _tl.c.code).where(
                _tl.c.cohort_id == cohort_id,
                _tl.c.user_id == user_id,
                one_of(self.dialect, _tl.c.task_id, "task_ids", task_ids),
            )
        )
        return {r.task_id: r.code for r in rows}

    async def lock_fans_and_store(
        self,
        locks: Sequence[FanLockRequest],
        source: str,
        events: Sequence[EventIfHolder],
        at: datetime,
    ) -> int:
        first: dict[tuple[int, str], FanLockRequest] = {}
        # Sorted: two batches take the key locks in one order (no deadlock on PostgreSQL).
        for lock in sorted(locks, key=lambda k: (k.cohort_id, k.visitor)):
            first.setdefault((lock.cohort_id, lock.visitor), lock)
        # Sorted by id as Events.store does; one id may come with several holders (one
        # of them may hold the lock), so only exact repeats go.
        wanted: dict[tuple[str, FanLockRequest | None], EventIfHolder] = {}
        for e in sorted(events, key=lambda e: e.event.event_id):
            wanted.setdefault((e.event.event_id, e.holder), e)
        if self.dialect == "postgresql":
            return await self._lock_fans_and_store_unnest(
                list(first.values()), source, list(wanted.values()), at
            )
        holders = await self._lock_fans(list(first.values()), at)
        kept = [
            e.event
            for e in wanted.values()
            if e.holder is None
            or holders.get((e.holder.cohort_id, e.holder.visitor)) == e.holder.user_id
        ]
        return len(await store_events(self.conn, source, kept, at))

    async def _lock_fans_and_store_unnest(
        self,
        locks: list[FanLockRequest],
        source: str,
        events: list[EventIfHolder],
        at: datetime,
    ) -> int:
        """PostgreSQL: :data:`_LOCK_FANS_AND_STORE`, each column one array parameter,
        run as the driver's own SQL (in the order given: the key order)."""
        holders = [e.holder for e in events]
        result = await self.conn.exec_driver_sql(
            _LOCK_FANS_AND_STORE,
            (
                source,
                at,
                *event_arrays([e.event for e in events]),
                [k.cohort_id for k in locks],
                [k.visitor for k in locks],
                [k.user_id for k in locks],
                [k.code for k in locks],
                [h.cohort_id if h else None for h in holders],
                [h.visitor if h else None for h in holders],
                [h.user_id if h else None for h in holders],
            ),
        )
        return len(result.all())

    async def _lock_fans(
        self, locks: list[FanLockRequest], at: datetime
    ) -> dict[tuple[int, str], int]:
        """SQLite: lock each (cohort, visitor) not locked yet (one request each, in key
        order); the holder of every (cohort, visitor) asked about, afterwards."""
        if not locks:
            return {}
        dialect = self.conn.dialect
        when = driver_value(_fl.c.locked_at, dialect)(at)
        inserted = await insert_many_returning(
            self.conn,
            "INSERT INTO fan_locks (cohort_id, visitor, user_id, code, locked_at)",
            [(k.cohort_id, k.visitor, k.user_id, k.code, when) for k in locks],
            "ON CONFLICT (cohort_id, visitor) DO NOTHING RETURNING cohort_id, visitor, user_id",
        )
        holders = {(r.cohort_id, r.visitor): r.user_id for r in inserted}
        # Visitors locked before (a repeat visit, or another member's fan): who has them.
        taken: dict[int, list[str]] = {}
        for k in locks:
            if (k.cohort_id, k.visitor) not in holders:
                taken.setdefault(k.cohort_id, []).append(k.visitor)
        for cohort_id, visitors in taken.items():
            for start in range(0, len(visitors), ROWS_PER_STATEMENT):
                chunk = visitors[start : start + ROWS_PER_STATEMENT]
                found = await self.conn.exec_driver_sql(
                    "SELECT visitor, user_id FROM fan_locks WHERE cohort_id = ?"
                    f" AND visitor IN ({', '.join('?' * len(chunk))})",
                    (cohort_id, *chunk),
                )
                holders.update({(cohort_id, r.visitor): r.user_id for r in found})
        return holders

    async def secret(self, name: str, candidate: str, at: datetime) -> str:
        await self.conn.execute(
            insert_ignore(self.dialect, _s, "name"),
            [{"name": name, "value": candidate, "created_at": at}],
        )
        value = (await self.conn.execute(select(_s.c.value).where(_s.c.name == name))).scalar()
        assert value is not None  # inserted just now or before
        return str(value)
