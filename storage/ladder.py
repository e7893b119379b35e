"""The task ladder in SQL: progress per task, inbound events, the ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update

from funnels.kernel.records import IncomingEvent, LedgerCredit, TaskProgressRecord
from storage.db import insert_ignore
from storage.sql import Repo, prepared
from storage.tables import (
    inbound_events as _ev,
    ledger_entries as _l,
    task_progress as _tp,
    task_unique_keys as _tu,
)


def _progress(raw: Mapping[str, Any] | None) -> dict[int, int]:
    return {int(k): int(v) for k, v in (raw or {}).items()}


class SqlTasks(Repo):
    async def add_unique_many(self, rows: Sequence[tuple[int, int, str]]) -> None:
        if rows:
            await self.conn.execute(
                insert_ignore(self.dialect, _tu, "progress_id", "leaf", "value"),
                [{"progress_id": p, "leaf": leaf, "value": v[:128]} for p, leaf, v in rows],
            )

    def _save_statement(self) -> Any:
        return (
            update(_tp)
            .where(_tp.c.id == bindparam("b_id"))
            .values(
                progress=bindparam("b_progress", type_=_tp.c.progress.type),
                updated_at=bindparam("b_at", type_=_tp.c.updated_at.type),
                completed_at=func.coalesce(
                    _tp.c.completed_at, bindparam("b_done", type_=_tp.c.completed_at.type)
                ),
                reward_status=func.coalesce(
                    bindparam("b_reward", type_=_tp.c.reward_status.type), _tp.c.reward_status
                ),
            )
        )

    async def save_many(
        self,
        rows: Sequence[tuple[int, Mapping[int, int], datetime | None, str | None]],
        at: datetime,
    ) -> None:
        """``save`` for many rows in one round trip: (id, progress, completed_at, reward
        status); a None completion or reward status keeps what is stored."""
        if not rows:
            return
        await self.conn.execute(
            prepared("progress_save", self.dialect, self._save_statement),
            [
                {
                    "b_id": pid,
                    "b_progress": {str(k): v for k, v in values.items()},
                    "b_at": at,
                    "b_done": done,
                    "b_reward": reward,
                }
                for pid, values, done, reward in rows
            ],
        )

    async def progress_many(
        self, keys: Sequence[tuple[int, int, str]], at: datetime
    ) -> dict[tuple[int, int, str], TaskProgressRecord]:
        """Progress rows for (cohort, user, task) triples, created empty where missing.

        On PostgreSQL the rows are locked in id order, so concurrent batches queue
        instead of deadlocking, until the transaction ends."""
        if not keys:
            return {}
        wanted = sorted(set(keys))
        await self.conn.execute(
            prepared(
                "progress_create",
                self.dialect,
                lambda: insert_ignore(self.dialect, _tp, "cohort_id", "user_id", "task_id"),
            ),
            [
                {"cohort_id": c, "user_id": u, "task_id": t, "progress": {}, "updated_at": at}
                for c, u, t in wanted
            ],
        )
        query = (
            select(_tp)
            .where(
                _tp.c.user_id.in_(sorted({u for _, u, _ in wanted})),
                _tp.c.cohort_id.in_(sorted({c for c, _, _ in wanted})),
                _tp.c.task_id.in_(sorted({t for _, _, t in wanted})),
            )
            .order_by(_tp.c.id)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update()
        found: dict[tuple[int, int, str], TaskProgressRecord] = {}
        for r in (await self.conn.execute(query)).all():
            found[(r.cohort_id, r.user_id, r.task_id)] = TaskProgressRecord(
                r.id, r.cohort_id, r.user_id, r.task_id, _progress(r.progress), r.completed_at
            )
        return found

    async def for_member(self, cohort_id: int, user_id: int) -> dict[str, TaskProgressRecord]:
        rows = (
            await self.conn.execute(
                select(_tp).where(_tp.c.cohort_id == cohort_id, _tp.c.user_id == user_id)
            )
        ).all()
        return {
            r.task_id: TaskProgressRecord(
                r.id, r.cohort_id, r.user_id, r.task_id, _progress(r.progress), r.completed_at
            )
            for r in rows
        }

    async def unique_values_many(
        self, progress_ids: Sequence[int], values: Sequence[str]
    ) -> dict[tuple[int, int], set[str]]:
        """(progress id, leaf) -> which of ``values`` were already counted there."""
        out: dict[tuple[int, int], set[str]] = {}
        if not progress_ids or not values:
            return out
        for chunk in range(0, len(values), 500):
            rows = await self.conn.execute(
                select(_tu.c.progress_id, _tu.c.leaf, _tu.c.value).where(
                    _tu.c.progress_id.in_(sorted(set(progress_ids))),
                    _tu.c.value.in_(values[chunk : chunk + 500]),
                )
            )
            for r in rows:
                out.setdefault((r.progress_id, r.leaf), set()).add(r.value)
        return out


class SqlEvents(Repo):
    async def store(
        self, source: str, events: Sequence[IncomingEvent], at: datetime
    ) -> dict[str, int]:
        if not events:
            return {}
        unique: dict[str, IncomingEvent] = {}
        # Sorted by id: two batches sharing ids take the unique-index locks in one order
        # and cannot deadlock each other on PostgreSQL.
        for e in sorted(events, key=lambda e: e.event_id):
            unique.setdefault(e.event_id, e)
        rows = [
            {
                "source": source,
                "event_id": e.event_id,
                "type": e.type,
                "occurred_at": e.occurred_at,
                "received_at": at,
                "data": {
                    **dict(e.data),
                    **({"_ref": e.member_ref} if e.member_ref else {}),
                    **({"_tg": e.telegram_user_id} if e.telegram_user_id is not None else {}),
                },
            }
            for e in unique.values()
        ]
        # INSERT … ON CONFLICT DO NOTHING RETURNING: the rows it returns are exactly the
        # new ones, on SQLite and PostgreSQL alike (SQLAlchemy batches the rows).
        statement = prepared(
            "events_store",
            self.dialect,
            lambda: insert_ignore(self.dialect, _ev, "source", "event_id").returning(
                _ev.c.id, _ev.c.event_id
            ),
        )
        result = await self.conn.execute(statement, rows)
        return {got.event_id: got.id for got in result.all()}

    async def mark_handled(
        self, ids: Sequence[tuple[int, int | None, int | None, str]], at: datetime
    ) -> None:
        if not ids:
            return
        await self.conn.execute(
            update(_ev)
            .where(_ev.c.id == bindparam("row_id"))
            .values(
                user_id=bindparam("uid"),
                cohort_id=bindparam("cid"),
                outcome=bindparam("result"),
                handled_at=at,
            ),
            [{"row_id": r, "uid": u, "cid": c, "result": o} for r, u, c, o in ids],
        )


class SqlLedger(Repo):
    async def credit(self, entry: LedgerCredit, at: datetime) -> bool:
        statement = prepared(
            "ledger_credit",
            self.dialect,
            lambda: insert_ignore(self.dialect, _l, "idempotency_key"),
        )
        result = await self.conn.execute(
            statement,
            {
                "idempotency_key": entry.key,
                "user_id": entry.user_id,
                "cohort_id": entry.cohort_id,
                "kind": entry.kind,
                "ref": entry.ref,
                "amount_minor": entry.amount_minor,
                "currency": entry.currency,
                "created_at": at,
                "paid_out": False,
            },
        )
        return result.rowcount == 1

    async def credit_many(self, entries: Sequence[LedgerCredit], at: datetime) -> int:
        if not entries:
            return 0
        statement = prepared(
            "ledger_credit",
            self.dialect,
            lambda: insert_ignore(self.dialect, _l, "idempotency_key"),
        )
        result = await self.conn.execute(
            statement,
            [
                {
                    "idempotency_key": e.key,
                    "user_id": e.user_id,
                    "cohort_id": e.cohort_id,
                    "kind": e.kind,
                    "ref": e.ref,
                    "amount_minor": e.amount_minor,
                    "currency": e.currency,
                    "created_at": at,
                    "paid_out": False,
                }
                for e in entries
            ],
        )
        return int(result.rowcount)

    async def balance(self, user_id: int) -> dict[str, int]:
        rows = (
            await self.conn.execute(
                select(_l.c.currency, func.sum(_l.c.amount_minor))
                .where(_l.c.user_id == user_id)
                .group_by(_l.c.currency)
            )
        ).all()
        return {r[0]: int(r[1]) for r in rows}
