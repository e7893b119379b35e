"""Invite links and regions in SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from funnels.kernel.refusals import AlreadyExists
from funnels.ports import (
    InviteLinkRecord,
    RegionRecord,
)
from storage.db import insert_ignore
from storage.sql import Repo
from storage.tables import (
    invite_links as _il,
    regions as _r,
)


def _link(row: Any) -> InviteLinkRecord:
    return InviteLinkRecord(row.link, row.chat_id, row.cohort_id, row.owner_id, row.kind)


class SqlLinks(Repo):
    async def add(self, record: InviteLinkRecord, at: datetime) -> None:
        await self.conn.execute(
            insert_ignore(self.dialect, _il, "link"),
            [
                {
                    "link": record.link,
                    "chat_id": record.chat_id,
                    "cohort_id": record.cohort_id,
                    "owner_id": record.owner_id,
                    "kind": record.kind,
                    "created_at": at,
                }
            ],
        )

    async def get(self, link: str) -> InviteLinkRecord | None:
        row = (await self.conn.execute(select(_il).where(_il.c.link == link))).first()
        return _link(row) if row else None

    async def find(
        self, cohort_id: int, kind: str, owner_id: int | None = None
    ) -> InviteLinkRecord | None:
        statement = select(_il).where(_il.c.cohort_id == cohort_id, _il.c.kind == kind)
        if owner_id is not None:
            statement = statement.where(_il.c.owner_id == owner_id)
        row = (await self.conn.execute(statement.order_by(_il.c.id.desc()).limit(1))).first()
        return _link(row) if row else None

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        await self.conn.execute(
            update(_il).where(_il.c.chat_id == old_chat_id).values(chat_id=new_chat_id)
        )


def _region(row: Any) -> RegionRecord:
    return RegionRecord(row.id, row.code, row.name, row.timezone, row.weekly_target)


class SqlRegions(Repo):
    async def add(
        self, code: str, name: str, timezone: str, weekly_target: int, at: datetime
    ) -> RegionRecord:
        try:
            async with self.conn.begin_nested():
                row = (
                    await self.conn.execute(
                        _r.insert()
                        .values(
                            code=code,
                            name=name,
                            timezone=timezone,
                            weekly_target=weekly_target,
                            created_at=at,
                        )
                        .returning(*_r.c)
                    )
                ).one()
        except IntegrityError:
            raise AlreadyExists(f"region {code} exists") from None
        return _region(row)

    async def by_code(self, code: str) -> RegionRecord | None:
        row = (await self.conn.execute(select(_r).where(_r.c.code == code))).first()
        return _region(row) if row else None

    async def get(self, region_id: int) -> RegionRecord | None:
        row = (await self.conn.execute(select(_r).where(_r.c.id == region_id))).first()
        return _region(row) if row else None

    async def all(self) -> list[RegionRecord]:
        rows = (await self.conn.execute(select(_r).order_by(_r.c.code))).all()
        return [_region(r) for r in rows]
