"""The Telegram update inbox in SQL (table ``telegram_updates``).

Updates are written as a batch before Telegram is told they arrived, so a crash never
loses one; ``ON CONFLICT DO NOTHING`` on (bot, update id) makes a re-delivered update a
no-op, and the insert returns only the rows that are new, which are the ones to handle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import insert_ignore
from storage.tables import telegram_updates as _t

ERROR_LENGTH = 500
"""Failure reasons are kept short: a reason, not a dump."""


@dataclass(frozen=True, slots=True)
class ReceivedUpdate:
    update_id: int
    kind: str
    payload: str
    """The update as JSON text."""


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    update_id: int
    payload: str
    attempts: int


class SqlUpdates:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name

    async def store(
        self,
        bot_id: int,
        updates: Sequence[ReceivedUpdate],
        at: datetime,
        owner: str,
        lease_until: datetime,
    ) -> list[int]:
        """Store what is new, in ``owner``'s hands until ``lease_until``; the ids of the
        updates stored now (not seen before)."""
        if not updates:
            return []
        statement = insert_ignore(self.dialect, _t, "bot_id", "update_id").returning(_t.c.update_id)
        rows = [
            {
                "bot_id": bot_id,
                "update_id": u.update_id,
                "kind": u.kind,
                "payload": u.payload,
                "state": "pending",
                "attempts": 0,
                "owner": owner,
                "lease_until": lease_until,
                "received_at": at,
            }
            for u in updates
        ]
        result = await self.conn.execute(statement, rows)
        return [row.update_id for row in result.all()]

    async def mark_handled(self, bot_id: int, update_ids: Sequence[int], at: datetime) -> None:
        if update_ids:
            await self.conn.execute(
                update(_t)
                .where(
                    _t.c.bot_id == bot_id,
                    _t.c.update_id.in_(list(update_ids)),
                    _t.c.state == "pending",
                )
                .values(state="handled", finished_at=at)
            )

    async def mark_failed(
        self, bot_id: int, failures: Sequence[tuple[int, str]], at: datetime
    ) -> None:
        for update_id, reason in failures:
            await self.conn.execute(
                update(_t)
                .where(_t.c.bot_id == bot_id, _t.c.update_id == update_id, _t.c.state == "pending")
                .values(state="failed", finished_at=at, error=reason[:ERROR_LENGTH])
            )

    async def claim(
        self,
        bot_id: int,
        owner: str,
        now: datetime,
        lease_until: datetime,
        *,
        restarted: bool = False,
        after: int = -1,
        limit: int = 200,
    ) -> list[PendingUpdate]:
        """Take into ``owner``'s hands the pending updates (ids above ``after``, oldest
        first) that nobody holds: their lease ran out, or (``restarted``) ``owner`` held
        them before it restarted. Each counts as an attempt."""
        free = _t.c.lease_until < now
        if restarted:
            free = free | (_t.c.owner == owner)
        query = (
            select(_t.c.update_id)
            .where(_t.c.state == "pending", _t.c.bot_id == bot_id, _t.c.update_id > after, free)
            .order_by(_t.c.update_id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list((await self.conn.execute(query)).scalars())
        if not ids:
            return []
        rows = (
            await self.conn.execute(
                update(_t)
                .where(_t.c.bot_id == bot_id, _t.c.update_id.in_(ids), _t.c.state == "pending")
                .values(owner=owner, lease_until=lease_until, attempts=_t.c.attempts + 1)
                .returning(_t.c.update_id, _t.c.payload, _t.c.attempts)
            )
        ).all()
        found = sorted(rows, key=lambda r: r.update_id)
        return [PendingUpdate(r.update_id, r.payload, r.attempts - 1) for r in found]

    async def abandon_other_bots(self, bot_id: int, at: datetime) -> int:
        """Updates another bot received and never handled (the token was changed): this
        bot cannot answer them, so they are closed as failed."""
        result = await self.conn.execute(
            update(_t)
            .where(_t.c.state == "pending", _t.c.bot_id != bot_id)
            .values(state="failed", finished_at=at, error="received by another bot")
        )
        return max(result.rowcount, 0)

    async def prune(self, handled_before: datetime, failed_before: datetime) -> int:
        result = await self.conn.execute(
            delete(_t).where(
                _t.c.finished_at < max(handled_before, failed_before),
                ((_t.c.state == "handled") & (_t.c.finished_at < handled_before))
                | ((_t.c.state == "failed") & (_t.c.finished_at < failed_before)),
            )
        )
        return max(result.rowcount, 0)

    async def counts(self, bot_id: int) -> dict[str, int]:
        """How many updates are in each state (for reports and tests)."""
        rows = (
            await self.conn.execute(
                select(_t.c.state, func.count()).where(_t.c.bot_id == bot_id).group_by(_t.c.state)
            )
        ).all()
        return {state: int(n) for state, n in rows}
