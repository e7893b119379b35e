"""Cohorts in SQL: creation, status, the pitch window, budget reservations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError

from funnels.kernel.records import CohortRecord, CohortStatus, NewCohort
from funnels.kernel.refusals import AlreadyExists
from storage.sql import Repo, one_of, prepared, unnested
from storage.tables import (
    cohort_members as _m,
    cohorts as _c,
    envelopes as _e,
    step_runs as _s,
)


def _cohort(row: Any) -> CohortRecord:
    return CohortRecord(
        id=row.id,
        code=row.code,
        script_id=row.script_id,
        script_version=row.script_version,
        script_hash=row.script_hash,
        script_body=row.script_body,
        locale=row.locale,
        timezone=row.timezone,
        capacity=row.capacity,
        currency=row.currency,
        budget_minor=row.budget_minor,
        spent_minor=row.spent_minor,
        start_date=row.start_date,
        ends_at=row.ends_at,
        status=row.status,
        warmup_chat_id=row.warmup_chat_id,
        task_chat_id=row.task_chat_id,
        pitch_opened_at=row.pitch_opened_at,
        pitch_closed_at=row.pitch_closed_at,
        region_id=row.region_id,
        leader_id=row.leader_id,
        parent_cohort_id=row.parent_cohort_id,
        admissions_noted_at=row.admissions_noted_at,
        status_reason=row.status_reason,
        generation=row.generation,
        admission=row.admission,
    )


class SqlCohorts(Repo):
    async def create(self, cohort: NewCohort, created_at: datetime) -> CohortRecord:
        values = {name: getattr(cohort, name) for name in NewCohort.__dataclass_fields__}
        statement = (
            _c.insert()
            .values(**values, spent_minor=0, status="running", created_at=created_at)
            .returning(*_c.c)
        )
        try:
            async with self.conn.begin_nested():
                row = (await self.conn.execute(statement)).one()
        except IntegrityError as exc:
            raise AlreadyExists(str(exc.orig)) from None
        return _cohort(row)

    async def get(self, cohort_id: int) -> CohortRecord | None:
        statement = prepared(
            "cohort", self.dialect, lambda: select(_c).where(_c.c.id == bindparam("id"))
        )
        row = (await self.conn.execute(statement, {"id": cohort_id})).first()
        return _cohort(row) if row else None

    async def get_many(self, cohort_ids: Sequence[int]) -> dict[int, CohortRecord]:
        if not cohort_ids:
            return {}
        statement = prepared(
            "cohorts_many",
            self.dialect,
            lambda: select(_c).where(one_of(self.dialect, _c.c.id, "ids")),
        )
        rows = await self.conn.execute(statement, {"ids": sorted(set(cohort_ids))})
        return {row.id: _cohort(row) for row in rows}

    async def running(self, now: datetime) -> list[CohortRecord]:
        rows = (
            await self.conn.execute(
                select(_c).where(_c.c.status == "running", _c.c.ends_at > now).order_by(_c.c.id)
            )
        ).all()
        return [_cohort(r) for r in rows]

    async def graduated_from(self, user_id: int) -> CohortRecord | None:
        row = (
            await self.conn.execute(
                select(_c)
                .join(_m, _m.c.cohort_id == _c.c.id)
                .where(_m.c.user_id == user_id)
                .order_by(
                    _m.c.supervisor_at.is_(None),  # cohorts where they became supervisor first
                    _m.c.supervisor_at.desc(),
                    _m.c.joined_at.desc(),
                    _c.c.id.desc(),
                )
                .limit(1)
            )
        ).first()
        return _cohort(row) if row else None

    async def by_code(self, code: str) -> CohortRecord | None:
        row = (await self.conn.execute(select(_c).where(_c.c.code == code))).first()
        return _cohort(row) if row else None

    async def by_chat(self, chat_id: int) -> CohortRecord | None:
        statement = prepared(
            "cohort_by_chat",
            self.dialect,
            lambda: select(_c).where(
                (_c.c.warmup_chat_id == bindparam("chat"))
                | (_c.c.task_chat_id == bindparam("chat"))
            ),
        )
        row = (await self.conn.execute(statement, {"chat": chat_id})).first()
        return _cohort(row) if row else None

    async def warming_up_in(self, chat_id: int) -> CohortRecord | None:
        statement = prepared(
            "cohort_warming_up_in",
            self.dialect,
            lambda: select(_c).where(_c.c.warmup_chat_id == bindparam("chat")),
        )
        row = (await self.conn.execute(statement, {"chat": chat_id})).first()
        return _cohort(row) if row else None

    async def set_status(
        self, cohort_id: int, status: CohortStatus, reason: str | None, at: datetime
    ) -> None:
        values: dict[str, Any] = {"status": status, "status_reason": reason}
        if status in ("finished", "cancelled"):
            values["finished_at"] = at
        await self.conn.execute(update(_c).where(_c.c.id == cohort_id).values(**values))

    async def open_pitch(self, cohort_id: int, at: datetime) -> bool:
        result = await self.conn.execute(
            update(_c)
            .where(_c.c.id == cohort_id, _c.c.pitch_opened_at.is_(None))
            .values(pitch_opened_at=at)
        )
        return result.rowcount == 1

    async def withdraw_pitch(self, cohort_id: int, at: datetime) -> None:
        await self.conn.execute(
            update(_c)
            .where(
                _c.c.id == cohort_id,
                _c.c.pitch_opened_at == at,
                _c.c.pitch_closed_at.is_(None),
            )
            .values(pitch_opened_at=None)
        )

    async def bind_task_chat(self, cohort_id: int, chat_id: int) -> None:
        await self.conn.execute(update(_c).where(_c.c.id == cohort_id).values(task_chat_id=chat_id))

    async def pitches_to_announce(self, noted_before: datetime) -> list[CohortRecord]:
        statement = prepared("cohorts.pitches_to_announce", self.dialect, _pitches_to_announce)
        rows = (await self.conn.execute(statement, {"noted_before": noted_before})).all()
        return [_cohort(r) for r in rows]

    async def note_admissions(self, cohort_ids: Sequence[int], at: datetime) -> None:
        await self.conn.execute(
            update(_c).where(_c.c.id.in_(cohort_ids)).values(admissions_noted_at=at)
        )

    async def finish_due(self, now: datetime) -> list[int]:
        statement = prepared("cohorts.finish_due", self.dialect, _finish_due)
        rows = (await self.conn.execute(statement, {"now": now})).all()
        return [int(r.id) for r in rows]

    async def close_pitch(self, cohort_id: int, at: datetime) -> None:
        await self.conn.execute(
            update(_c)
            .where(_c.c.id == cohort_id, _c.c.pitch_closed_at.is_(None))
            .values(pitch_closed_at=at)
        )

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> list[int]:
        moved: set[int] = set()
        for column in ("warmup_chat_id", "task_chat_id"):
            rows = (
                await self.conn.execute(
                    update(_c)
                    .where(_c.c[column] == old_chat_id)
                    .values({column: new_chat_id})
                    .returning(_c.c.id)
                )
            ).all()
            moved.update(int(r.id) for r in rows)
        await self.conn.execute(
            update(_e).where(_e.c.chat_id == old_chat_id).values(chat_id=new_chat_id)
        )
        return sorted(moved)

    async def reserve(self, cohort_id: int, amount_minor: int) -> bool:
        statement = prepared(
            "cohort_reserve",
            self.dialect,
            lambda: (
                update(_c)
                .where(
                    _c.c.id == bindparam("cohort"),
                    _c.c.spent_minor + bindparam("amount") <= _c.c.budget_minor,
                )
                .values(spent_minor=_c.c.spent_minor + bindparam("amount"))
            ),
        )
        result = await self.conn.execute(statement, {"cohort": cohort_id, "amount": amount_minor})
        return result.rowcount == 1

    async def lock_budgets(self, cohort_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Budget and spend of each cohort, in minor units. On PostgreSQL the rows are
        locked in id order until the transaction ends: batches in other processes that
        spend from the same cohorts queue behind this one instead of deadlocking."""
        return await self._budgets(cohort_ids, hold=True)

    async def read_budgets(self, cohort_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Budget and spend of each cohort, in minor units, as committed (not held)."""
        return await self._budgets(cohort_ids, hold=False)

    async def _budgets(
        self, cohort_ids: Sequence[int], *, hold: bool
    ) -> dict[int, tuple[int, int]]:
        if not cohort_ids:
            return {}
        held = hold and self.dialect == "postgresql"

        def build() -> Any:
            query = (
                select(_c.c.id, _c.c.budget_minor, _c.c.spent_minor)
                .where(one_of(self.dialect, _c.c.id, "ids"))
                .order_by(_c.c.id)
            )
            # FOR NO KEY UPDATE, the lock an UPDATE of the spend takes: FOR UPDATE would
            # also wait for the key-share locks that inserts referencing the cohort
            # (progress rows, ledger entries) hold, and two appliers would deadlock.
            return query.with_for_update(key_share=True) if held else query

        rows = await self.conn.execute(
            prepared("cohort_budgets_locked" if held else "cohort_budgets", self.dialect, build),
            {"ids": sorted(set(cohort_ids))},
        )
        return {r.id: (int(r.budget_minor), int(r.spent_minor)) for r in rows}

    async def spend_many(self, amounts: Mapping[int, int]) -> None:
        """Add to cohorts' spend (cohort id -> minor units), unchecked: the caller holds
        the rows (:meth:`lock_budgets`) and decided what fits. On PostgreSQL one
        statement for all (the rows stay held until the commit: the fewer round trips
        before it, the less other appliers wait)."""
        if not amounts:
            return
        ordered = sorted(amounts.items())
        if self.dialect == "postgresql":
            await self.conn.execute(
                prepared("cohort_spend_many", self.dialect, _spend_many_pg),
                {"b_ids": [c for c, _ in ordered], "b_amounts": [a for _, a in ordered]},
            )
            return
        statement = prepared(
            "cohort_spend",
            self.dialect,
            lambda: (
                update(_c)
                .where(_c.c.id == bindparam("cohort"))
                .values(spent_minor=_c.c.spent_minor + bindparam("amount"))
            ),
        )
        await self.conn.execute(statement, [{"cohort": c, "amount": a} for c, a in ordered])

    async def release(self, cohort_id: int, amount_minor: int) -> None:
        await self.conn.execute(
            update(_c)
            .where(_c.c.id == cohort_id)
            .values(spent_minor=_c.c.spent_minor - amount_minor)
        )

    async def raise_budget(self, cohort_id: int, amount_minor: int) -> int:
        row = (
            await self.conn.execute(
                update(_c)
                .where(_c.c.id == cohort_id)
                .values(budget_minor=_c.c.budget_minor + amount_minor)
                .returning(_c.c.budget_minor)
            )
        ).one()
        return int(row.budget_minor)


def _spend_many_pg() -> Any:
    """``UPDATE cohorts SET spent_minor = spent_minor + v.amount FROM unnest(ids, amounts)``."""
    spend = unnested(("id", "b_ids", _c.c.id), ("amount", "b_amounts", _c.c.spent_minor))
    return (
        update(_c)
        .where(_c.c.id == spend.c.id)
        .values(spent_minor=_c.c.spent_minor + spend.c.amount)
    )


def _pitches_to_announce() -> Any:
    """Running cohorts whose pitch is open and has replies since they were last noted
    (or never noted), noted before ``noted_before``."""
    stamp = _c.c.admissions_noted_at
    replied_since = (
        select(_m.c.user_id)
        .where(
            _m.c.cohort_id == _c.c.id,
            _m.c.replied_at.is_not(None),
            or_(stamp.is_(None), _m.c.replied_at > stamp),
        )
        .exists()
    )
    return (
        select(_c)
        .where(
            _c.c.status == "running",
            _c.c.warmup_chat_id.is_not(None),
            _c.c.pitch_opened_at.is_not(None),
            _c.c.pitch_closed_at.is_(None),
            or_(stamp.is_(None), stamp <= bindparam("noted_before")),
            replied_since,
        )
        # PostgreSQL: the rows are this transaction's until it ends; another process's
        # look passes them by, and after the commit finds them noted.
        .with_for_update(of=_c, skip_locked=True)
    )


def _finish_due() -> Any:
    """Running cohorts past their end with no step left pending or running: finished
    at ``now``."""
    open_steps = (
        select(_s.c.id)
        .where(_s.c.cohort_id == _c.c.id, _s.c.status.in_(("pending", "running")))
        .exists()
    )
    return (
        update(_c)
        .where(_c.c.status == "running", _c.c.ends_at <= bindparam("now"), ~open_steps)
        .values(status="finished", finished_at=bindparam("now"))
        .returning(_c.c.id)
    )
