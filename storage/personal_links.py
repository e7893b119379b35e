"""Personal admission links in SQL: each responder's one-time link into the task group
and the claim it is made under (``funnels.warmup.personal``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from funnels.kernel.records import PersonalLinkRecord
from storage.db import insert_ignore
from storage.sql import Repo
from storage.tables import personal_links as _pl


def _record(row: Any) -> PersonalLinkRecord:
    return PersonalLinkRecord(
        row.cohort_id, row.user_id, row.attempt, row.claimed_at, row.link, row.expires_at
    )


class SqlPersonalLinks(Repo):
    async def get(self, cohort_id: int, user_id: int) -> PersonalLinkRecord | None:
        row = (
            await self.conn.execute(
                select(_pl).where(_pl.c.cohort_id == cohort_id, _pl.c.user_id == user_id)
            )
        ).first()
        return _record(row) if row else None

    async def claim(
        self,
        cohort_id: int,
        user_id: int,
        previous: int | None,
        at: datetime,
        expires_at: datetime,
    ) -> int | None:
        if previous is None:
            inserted = await self.conn.execute(
                insert_ignore(self.dialect, _pl, "cohort_id", "user_id"),
                [
                    {
                        "cohort_id": cohort_id,
                        "user_id": user_id,
                        "attempt": 1,
                        "claimed_at": at,
                        "link": None,
                        "expires_at": expires_at,
                        "created_at": at,
                    }
                ],
            )
            return 1 if inserted.rowcount == 1 else None
        moved = await self.conn.execute(
            update(_pl)
            .where(
                _pl.c.cohort_id == cohort_id,
                _pl.c.user_id == user_id,
                _pl.c.attempt == previous,
            )
            .values(attempt=previous + 1, claimed_at=at, link=None, expires_at=expires_at)
        )
        return previous + 1 if moved.rowcount == 1 else None

    async def fill(self, cohort_id: int, user_id: int, attempt: int, link: str) -> bool:
        done = await self.conn.execute(
            update(_pl)
            .where(
                _pl.c.cohort_id == cohort_id,
                _pl.c.user_id == user_id,
                _pl.c.attempt == attempt,
                _pl.c.link.is_(None),
            )
            .values(link=link, claimed_at=None)
        )
        return done.rowcount == 1

    async def release(self, cohort_id: int, user_id: int, attempt: int) -> None:
        await self.conn.execute(
            update(_pl)
            .where(
                _pl.c.cohort_id == cohort_id,
                _pl.c.user_id == user_id,
                _pl.c.attempt == attempt,
                _pl.c.link.is_(None),
            )
            .values(claimed_at=None)
        )

    async def use(self, cohort_id: int, user_id: int, link: str) -> bool:
        done = await self.conn.execute(
            update(_pl)
            .where(_pl.c.cohort_id == cohort_id, _pl.c.user_id == user_id, _pl.c.link == link)
            .values(link=None, claimed_at=None)
        )
        return done.rowcount == 1
