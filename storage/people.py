"""People in SQL: users (profile, role, region, locale, reachability), invite links,
regions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from funnels.kernel.codes import new_code
from funnels.kernel.records import InviteLinkRecord, MemberRef, RegionRecord
from funnels.kernel.refusals import AlreadyExists
from funnels.kernel.stages import Role
from storage.db import insert_ignore
from storage.sql import Repo, one_of, prepared
from storage.tables import (
    cohort_members as _m,
    invite_links as _il,
    regions as _r,
    users as _u,
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
        statement = prepared(
            "link_get", self.dialect, lambda: select(_il).where(_il.c.link == bindparam("link"))
        )
        row = (await self.conn.execute(statement, {"link": link})).first()
        return _link(row) if row else None

    async def find(
        self, cohort_id: int, kind: str, owner_id: int | None = None
    ) -> InviteLinkRecord | None:
        statement = select(_il).where(_il.c.cohort_id == cohort_id, _il.c.kind == kind)
        if owner_id is not None:
            statement = statement.where(_il.c.owner_id == owner_id)
        row = (await self.conn.execute(statement.order_by(_il.c.id.desc()).limit(1))).first()
        return _link(row) if row else None

    async def newest(self, cohort_ids: Sequence[int], kind: str) -> dict[int, InviteLinkRecord]:
        newest = (
            select(func.max(_il.c.id))
            .where(_il.c.cohort_id.in_(cohort_ids), _il.c.kind == kind)
            .group_by(_il.c.cohort_id)
        )
        rows = await self.conn.execute(select(_il).where(_il.c.id.in_(newest)))
        return {int(r.cohort_id): _link(r) for r in rows}

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


# What a member reads in: the locale they chose with /lang, else their app's language.
_LANGUAGE = func.coalesce(_u.c.chosen_locale, _u.c.language).label("language")


class SqlUsers(Repo):
    async def ensure_user(
        self, telegram_id: int, name: str, language: str | None, at: datetime
    ) -> MemberRef:
        existing = await self.by_telegram(telegram_id)
        if existing:
            return existing
        for _attempt in range(5):
            try:
                async with self.conn.begin_nested():
                    row = (
                        await self.conn.execute(
                            _u.insert()
                            .values(
                                telegram_id=telegram_id,
                                display_name=name[:256],
                                language=language,
                                role=Role.MEMBER,
                                ref_code=new_code(10),
                                created_at=at,
                            )
                            .returning(_u.c.id)
                        )
                    ).one()
                return MemberRef(row.id, telegram_id, language)
            except IntegrityError:
                raced = await self.by_telegram(telegram_id)
                if raced:
                    return raced
        raise RuntimeError("could not allocate a unique ref code")

    async def add_users(
        self, rows: Sequence[tuple[int, str, str | None]], at: datetime
    ) -> list[MemberRef]:
        """Bulk-create users that are known not to exist yet (simulation, imports)."""
        values = [
            {
                "telegram_id": tg,
                "display_name": name,
                "language": lang,
                "role": Role.MEMBER,
                "ref_code": new_code(10),
                "created_at": at,
            }
            for tg, name, lang in rows
        ]
        await self.conn.execute(_u.insert(), values)
        found = (
            await self.conn.execute(
                select(_u.c.id, _u.c.telegram_id, _LANGUAGE).where(
                    _u.c.telegram_id.in_([r[0] for r in rows])
                )
            )
        ).all()
        by_tg = {r.telegram_id: MemberRef(r.id, r.telegram_id, r.language) for r in found}
        return [by_tg[r[0]] for r in rows]

    async def resolve_many(
        self, refs: Sequence[str], telegram_ids: Sequence[int]
    ) -> tuple[dict[str, MemberRef], dict[int, MemberRef]]:
        """Members by personal ref code and by Telegram id: two queries for a batch."""
        by_ref: dict[str, MemberRef] = {}
        by_tg: dict[int, MemberRef] = {}
        if refs:
            rows = await self.conn.execute(
                select(_u.c.id, _u.c.telegram_id, _LANGUAGE, _u.c.ref_code).where(
                    one_of(self.dialect, _u.c.ref_code, "refs", sorted(set(refs)))
                )
            )
            by_ref = {r.ref_code: MemberRef(r.id, r.telegram_id, r.language) for r in rows}
        if telegram_ids:
            rows = await self.conn.execute(
                select(_u.c.id, _u.c.telegram_id, _LANGUAGE).where(
                    one_of(self.dialect, _u.c.telegram_id, "tgs", sorted(set(telegram_ids)))
                )
            )
            by_tg = {r.telegram_id: MemberRef(r.id, r.telegram_id, r.language) for r in rows}
        return by_ref, by_tg

    async def ref_code(self, user_id: int) -> str:
        statement = prepared(
            "ref_code",
            self.dialect,
            lambda: select(_u.c.ref_code).where(_u.c.id == bindparam("user_id")),
        )
        return str((await self.conn.execute(statement, {"user_id": user_id})).scalar_one())

    async def ref_codes(self, user_ids: Sequence[int]) -> dict[int, tuple[str, int | None]]:
        """Each user's ref code and Telegram id (the ``member`` of the events we send)."""
        if not user_ids:
            return {}
        statement = prepared(
            "ref_codes",
            self.dialect,
            lambda: select(_u.c.id, _u.c.ref_code, _u.c.telegram_id).where(
                one_of(self.dialect, _u.c.id, "ids")
            ),
        )
        rows = await self.conn.execute(statement, {"ids": sorted(set(user_ids))})
        return {r.id: (str(r.ref_code), r.telegram_id) for r in rows}

    async def by_telegram(self, telegram_id: int) -> MemberRef | None:
        statement = prepared(
            "by_telegram",
            self.dialect,
            lambda: select(_u.c.id, _u.c.telegram_id, _LANGUAGE).where(
                _u.c.telegram_id == bindparam("tg")
            ),
        )
        row = (await self.conn.execute(statement, {"tg": telegram_id})).first()
        return MemberRef(row.id, row.telegram_id, row.language) if row else None

    async def name(self, user_id: int) -> str | None:
        value = (
            await self.conn.execute(select(_u.c.display_name).where(_u.c.id == user_id))
        ).scalar()
        return str(value) if value is not None else None

    async def set_role_at_least(self, user_id: int, role: Role) -> None:
        await self.conn.execute(
            update(_u).where(_u.c.id == user_id, _u.c.role < role).values(role=role)
        )

    async def ref(self, user_id: int) -> MemberRef | None:
        statement = prepared(
            "user_ref",
            self.dialect,
            lambda: select(_u.c.id, _u.c.telegram_id, _LANGUAGE).where(
                _u.c.id == bindparam("user_id")
            ),
        )
        row = (await self.conn.execute(statement, {"user_id": user_id})).first()
        return MemberRef(row.id, row.telegram_id, row.language) if row else None

    async def role(self, user_id: int) -> Role | None:
        value = (await self.conn.execute(select(_u.c.role).where(_u.c.id == user_id))).scalar()
        return Role(value) if value is not None else None

    async def grant(self, user_id: int, role: Role, region_id: int | None) -> None:
        await self.set_role_at_least(user_id, role)
        if region_id is not None:
            await self.conn.execute(
                update(_u).where(_u.c.id == user_id).values(region_id=region_id)
            )

    async def demote(self, user_id: int, role: Role) -> None:
        await self.conn.execute(
            update(_u).where(_u.c.id == user_id).values(role=role, region_id=None)
        )

    async def earned(self, user_id: int) -> Role:
        row = (
            await self.conn.execute(
                select(
                    func.count(_m.c.supervisor_at).label("supervisor"),
                    func.count(_m.c.shopkeeper_at).label("shopkeeper"),
                ).where(_m.c.user_id == user_id)
            )
        ).one()
        if row.supervisor:
            return Role.SUPERVISOR
        return Role.SHOPKEEPER if row.shopkeeper else Role.MEMBER

    async def region(self, user_id: int) -> int | None:
        value = (await self.conn.execute(select(_u.c.region_id).where(_u.c.id == user_id))).scalar()
        return int(value) if value is not None else None

    async def set_locale(self, user_id: int, locale: str) -> None:
        await self.conn.execute(update(_u).where(_u.c.id == user_id).values(chosen_locale=locale))

    async def set_reachable(self, telegram_id: int, reachable: bool, at: datetime) -> None:
        await self.conn.execute(
            update(_u)
            .where(_u.c.telegram_id == telegram_id)
            .values(unreachable_at=None if reachable else at)
        )
