"""Members' own groups for the group task in SQL: registered when a member adds the bot,
counted daily, and left when the task is done or the cohort ends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from funnels.kernel.records import MemberGroupRecord, MemberGroupState
from storage.sql import Repo, prepared
from storage.tables import (
    cohorts as _c,
    member_groups as _g,
)


def _group(row: Any) -> MemberGroupRecord:
    return MemberGroupRecord(
        id=row.id,
        chat_id=row.chat_id,
        owner_id=row.owner_id,
        cohort_id=row.cohort_id,
        task_id=row.task_id,
        state=row.state,
        member_count=row.member_count,
        checked_at=row.checked_at,
        left_at=row.left_at,
    )


class SqlMemberGroups(Repo):
    async def add(
        self, chat_id: int, owner_id: int, cohort_id: int, task_id: str, at: datetime
    ) -> MemberGroupRecord:
        row = (
            await self.conn.execute(
                _g.insert()
                .values(
                    chat_id=chat_id,
                    owner_id=owner_id,
                    cohort_id=cohort_id,
                    task_id=task_id,
                    state="counting",
                    added_at=at,
                )
                .returning(*_g.c)
            )
        ).one()
        return _group(row)

    async def get(self, group_id: int) -> MemberGroupRecord | None:
        row = (await self.conn.execute(select(_g).where(_g.c.id == group_id))).first()
        return _group(row) if row else None

    async def active_in(self, chat_id: int) -> MemberGroupRecord | None:
        row = (
            await self.conn.execute(
                select(_g).where(_g.c.chat_id == chat_id, _g.c.left_at.is_(None)).limit(1)
            )
        ).first()
        return _group(row) if row else None

    async def active_of(
        self, cohort_id: int, owner_id: int, task_id: str
    ) -> MemberGroupRecord | None:
        row = (
            await self.conn.execute(
                select(_g)
                .where(
                    _g.c.cohort_id == cohort_id,
                    _g.c.owner_id == owner_id,
                    _g.c.task_id == task_id,
                    _g.c.left_at.is_(None),
                )
                .limit(1)
            )
        ).first()
        return _group(row) if row else None

    async def counted(self, group_id: int, count: int, at: datetime) -> None:
        await self.conn.execute(
            update(_g).where(_g.c.id == group_id).values(member_count=count, checked_at=at)
        )

    async def move(
        self, group_id: int, expected: MemberGroupState, state: MemberGroupState
    ) -> bool:
        result = await self.conn.execute(
            update(_g)
            .where(_g.c.id == group_id, _g.c.state == expected, _g.c.left_at.is_(None))
            .values(state=state)
        )
        return result.rowcount == 1

    async def mark_left(self, group_id: int, at: datetime) -> bool:
        result = await self.conn.execute(
            update(_g).where(_g.c.id == group_id, _g.c.left_at.is_(None)).values(left_at=at)
        )
        return result.rowcount == 1

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        await self.conn.execute(
            update(_g).where(_g.c.chat_id == old_chat_id).values(chat_id=new_chat_id)
        )

    async def needing_care(self, now: datetime, count_before: datetime) -> list[MemberGroupRecord]:
        statement = prepared(
            "groups.needing_care",
            self.dialect,
            lambda: (
                select(_g)
                .join(_c, _c.c.id == _g.c.cohort_id)
                .where(
                    _g.c.left_at.is_(None),
                    or_(
                        _c.c.status.in_(("finished", "cancelled")),
                        _c.c.ends_at <= bindparam("now"),
                        _g.c.state == "talking",
                        (_g.c.state == "counting")
                        & or_(
                            _g.c.checked_at.is_(None),
                            _g.c.checked_at <= bindparam("count_before"),
                        ),
                    ),
                )
                .order_by(_g.c.id)
            ),
        )
        params = {"now": now, "count_before": count_before}
        rows = (await self.conn.execute(statement, params)).all()
        return [_group(r) for r in rows]
