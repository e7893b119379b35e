"""Tracked links in SQL: members' link codes, fan locks (first touch wins), and the
installation's secrets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select

from funnels.kernel.codes import LINK_CODE_LENGTH, new_code
from funnels.kernel.records import FanLockRequest, TrackedLinkRecord
from storage.db import insert_ignore
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

_LOCK_FANS_UNNEST = """
WITH wanted AS (
    SELECT * FROM unnest($2::bigint[], $3::varchar[], $4::bigint[], $5::varchar[])
                  AS w(cohort_id, visitor, user_id, code)
), locked AS (
    INSERT INTO fan_locks (cohort_id, visitor, user_id, code, locked_at)
    SELECT cohort_id, visitor, user_id, code, $1 FROM wanted
    ON CONFLICT (cohort_id, visitor) DO NOTHING
    RETURNING cohort_id, visitor, user_id
)
SELECT cohort_id, visitor, user_id FROM locked
UNION ALL
SELECT f.cohort_id, f.visitor, f.user_id
FROM fan_locks AS f JOIN wanted AS w USING (cohort_id, visitor)
"""
"""Fan locks on PostgreSQL: new locks, then the visitors locked before (the statement's
snapshot does not see the rows it inserts, so nothing comes twice)."""


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

    async def lock_fans(
        self, locks: Sequence[FanLockRequest], at: datetime
    ) -> dict[tuple[int, str], int]:
        first: dict[tuple[int, str], FanLockRequest] = {}
        # Sorted: two batches take the key locks in one order (no deadlock on PostgreSQL).
        for lock in sorted(locks, key=lambda k: (k.cohort_id, k.visitor)):
            first.setdefault((lock.cohort_id, lock.visitor), lock)
        if not first:
            return {}
        if self.dialect == "postgresql":
            return await self._lock_fans_unnest(list(first.values()), at)
        dialect = self.conn.dialect
        when = driver_value(_fl.c.locked_at, dialect)(at)
        inserted = await insert_many_returning(
            self.conn,
            "INSERT INTO fan_locks (cohort_id, visitor, user_id, code, locked_at)",
            [(k.cohort_id, k.visitor, k.user_id, k.code, when) for k in first.values()],
            "ON CONFLICT (cohort_id, visitor) DO NOTHING RETURNING cohort_id, visitor, user_id",
        )
        owners = {(r.cohort_id, r.visitor): r.user_id for r in inserted}
        # Visitors locked before (a repeat visit, or another member's fan): who has them.
        taken: dict[int, list[str]] = {}
        for cohort_id, visitor in first:
            if (cohort_id, visitor) not in owners:
                taken.setdefault(cohort_id, []).append(visitor)
        for cohort_id, visitors in taken.items():
            for start in range(0, len(visitors), ROWS_PER_STATEMENT):
                chunk = visitors[start : start + ROWS_PER_STATEMENT]
                found = await self.conn.exec_driver_sql(
                    "SELECT visitor, user_id FROM fan_locks WHERE cohort_id = ?"
                    f" AND visitor IN ({', '.join('?' * len(chunk))})",
                    (cohort_id, *chunk),
                )
                owners.update({(cohort_id, r.visitor): r.user_id for r in found})
        return owners

    async def _lock_fans_unnest(
        self, locks: list[FanLockRequest], at: datetime
    ) -> dict[tuple[int, str], int]:
        """PostgreSQL: lock and learn every visitor's owner in one statement, each column
        one array parameter, run as the driver's own SQL (in the order given: the key
        order)."""
        rows = await self.conn.exec_driver_sql(
            _LOCK_FANS_UNNEST,
            (
                at,
                [k.cohort_id for k in locks],
                [k.visitor for k in locks],
                [k.user_id for k in locks],
                [k.code for k in locks],
            ),
        )
        return {(r.cohort_id, r.visitor): r.user_id for r in rows}

    async def secret(self, name: str, candidate: str, at: datetime) -> str:
        await self.conn.execute(
            insert_ignore(self.dialect, _s, "name"),
            [{"name": name, "value": candidate, "created_at": at}],
        )
        value = (await self.conn.execute(select(_s.c.value).where(_s.c.name == name))).scalar()
        assert value is not None  # inserted just now or before
        return str(value)
