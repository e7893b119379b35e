"""Task rewards on their way out, in SQL: owed rewards waiting for budget, and the outbox
of ``reward.granted`` events, claimed for delivery with a lease."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, literal, or_, select, update

from funnels.kernel.records import PayoutRecord, PayoutStatus, RewardDue
from storage.sql import Repo, insert_many, one_of, prepared
from storage.tables import payouts as _p, task_progress as _tp


def _payout(row: Any) -> PayoutRecord:
    return PayoutRecord(
        id=row.id,
        key=row.key,
        cohort_id=row.cohort_id,
        user_id=row.user_id,
        task_id=row.task_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        status=row.status,
        body=row.body,
        completed_at=row.completed_at,
        granted_at=row.granted_at,
        attempts=row.attempts,
        first_attempt_at=row.first_attempt_at,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        member_notice=row.member_notice,
        leader_notice=row.leader_notice,
    )


def _values(reward: RewardDue) -> dict[str, Any]:
    return {
        "key": reward.key,
        "cohort_id": reward.cohort_id,
        "user_id": reward.user_id,
        "task_id": reward.task_id,
        "amount_minor": reward.amount_minor,
        "currency": reward.currency,
        "completed_at": reward.completed_at,
        "attempts": 0,
    }


class SqlPayouts(Repo):
    touched = False
    """Whether this transaction recorded a reward (the store wakes the deliverer after
    its commit)."""

    async def owing(self, cohort_ids: Sequence[int]) -> set[int]:
        """Which of these cohorts have a reward owed."""
        if not cohort_ids:
            return set()
        query = prepared(
            "payouts_owing",
            self.dialect,
            lambda: (
                select(_p.c.cohort_id)
                .where(one_of(self.dialect, _p.c.cohort_id, "cohorts"), _p.c.status == "owed")
                .distinct()
            ),
        )
        rows = await self.conn.execute(query, {"cohorts": sorted(set(cohort_ids))})
        return {int(r[0]) for r in rows}

    async def owe_many(self, rewards: Sequence[tuple[RewardDue, bool]], at: datetime) -> None:
        """Record rewards the budget cannot cover (reward, whether to tell the leader),
        once per key, in the order given (the order they are paid in later)."""
        await self._add(
            {
                **_values(reward),
                "status": "owed",
                "owed_at": at,
                "member_notice": "owed",
                "leader_notice": tell_leader,
            }
            for reward, tell_leader in rewards
        )

    async def queue_many(self, rewards: Sequence[tuple[RewardDue, str]], at: datetime) -> None:
        """Queue credited rewards' events (reward, event body) for delivery, once per key."""
        await self._add(
            {
                **_values(reward),
                "status": "pending",
                "body": body,
                "granted_at": at,
                "next_attempt_at": at,
                "leader_notice": False,
            }
            for reward, body in rewards
        )

    async def _add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Insert payout rows, ignoring keys already there, in the order given."""
        listed = list(rows)
        if listed:
            await insert_many(self.conn, _p, listed, "key")
            self.touched = True

    async def owed(self, cohort_id: int) -> list[PayoutRecord]:
        query = (
            select(_p).where(_p.c.cohort_id == cohort_id, _p.c.status == "owed").order_by(_p.c.id)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update()
        return [_payout(r) for r in (await self.conn.execute(query)).all()]

    async def grant_owed(self, payout: PayoutRecord, body: str, at: datetime) -> None:
        await self.conn.execute(
            update(_p)
            .where(_p.c.id == payout.id, _p.c.status == "owed")
            .values(
                status="pending",
                body=body,
                granted_at=at,
                next_attempt_at=at,
                member_notice="paid",
                leader_notice=False,
            )
        )
        await self.conn.execute(
            update(_tp)
            .where(
                _tp.c.cohort_id == payout.cohort_id,
                _tp.c.user_id == payout.user_id,
                _tp.c.task_id == payout.task_id,
            )
            .values(reward_status="paid")
        )
        self.touched = True

    async def claim_due(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[PayoutRecord]:
        free = or_(_p.c.lease_until.is_(None), _p.c.lease_until < now)
        due = (
            select(_p.c.id)
            .where(_p.c.status == "pending", _p.c.next_attempt_at <= now, free)
            .order_by(_p.c.next_attempt_at, _p.c.id)
            .limit(limit)
        )
        chosen: Any = due.scalar_subquery()
        if self.dialect == "postgresql":
            # As for step runs (storage/steps.py): chosen once, skipping rows another
            # process is claiming right now.
            cte = due.with_for_update(skip_locked=True).cte("due")
            chosen = select(cte.prefix_with("MATERIALIZED").c.id)
        claim = (
            update(_p)
            .where(_p.c.id.in_(chosen), _p.c.status == "pending", free)
            .values(
                lease_owner=owner,
                lease_until=lease_until,
                attempts=_p.c.attempts + 1,
                first_attempt_at=func.coalesce(
                    _p.c.first_attempt_at, literal(now, _p.c.first_attempt_at.type)
                ),
            )
            .returning(*_p.c)
        )
        async with self.in_index_order():
            rows = (await self.conn.execute(claim)).all()
        return sorted((_payout(r) for r in rows), key=lambda p: p.id)

    async def _finish(self, payout_id: int, owner: str, **values: Any) -> bool:
        result = await self.conn.execute(
            update(_p)
            .where(_p.c.id == payout_id, _p.c.status == "pending", _p.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, **values)
        )
        return result.rowcount == 1

    async def delivered(self, payout_ids: Sequence[int], owner: str, at: datetime) -> int:
        if not payout_ids:
            return 0
        statement = prepared(
            "payouts_delivered",
            self.dialect,
            lambda: (
                update(_p)
                .where(
                    one_of(self.dialect, _p.c.id, "ids"),
                    _p.c.status == "pending",
                    _p.c.lease_owner == bindparam("owner"),
                )
                .values(
                    lease_owner=None,
                    lease_until=None,
                    status="delivered",
                    delivered_at=bindparam("at"),
                    last_error=None,
                )
            ),
        )
        params = {"ids": sorted(set(payout_ids)), "owner": owner, "at": at}
        return int((await self.conn.execute(statement, params)).rowcount)

    async def retry_later(self, payout_id: int, owner: str, at: datetime, error: str) -> bool:
        return await self._finish(payout_id, owner, next_attempt_at=at, last_error=error[:1000])

    async def park(self, payout_id: int, owner: str, at: datetime, error: str) -> bool:
        return await self._finish(
            payout_id, owner, status="parked", parked_at=at, last_error=error[:1000]
        )

    async def owed_totals(self, cohort_id: int) -> tuple[int, int]:
        count, total = (
            await self.conn.execute(
                select(func.count(), func.coalesce(func.sum(_p.c.amount_minor), 0)).where(
                    _p.c.cohort_id == cohort_id, _p.c.status == "owed"
                )
            )
        ).one()
        return int(count), int(total)

    async def take_notices(self, limit: int) -> list[PayoutRecord]:
        query = prepared("payouts.take_notices", self.dialect, lambda: _notices(self.dialect))
        rows = [_payout(r) for r in (await self.conn.execute(query, {"limit": limit})).all()]
        if rows:
            await self.conn.execute(
                update(_p)
                .where(_p.c.id.in_([r.id for r in rows]))
                .values(member_notice=None, leader_notice=False)
            )
        return rows

    async def get(self, payout_id: int) -> PayoutRecord | None:
        row = (await self.conn.execute(select(_p).where(_p.c.id == payout_id))).first()
        return _payout(row) if row else None

    async def listing(self, statuses: Sequence[PayoutStatus], limit: int) -> list[PayoutRecord]:
        rows = await self.conn.execute(
            select(_p).where(_p.c.status.in_(statuses)).order_by(_p.c.id).limit(limit)
        )
        return [_payout(r) for r in rows.all()]

    async def count(self, statuses: Sequence[PayoutStatus]) -> int:
        query = select(func.count()).select_from(_p).where(_p.c.status.in_(statuses))
        return int((await self.conn.execute(query)).scalar_one())

    async def retry_parked(self, payout_ids: Sequence[int] | None, at: datetime) -> list[int]:
        """Parked payouts (these, or all of them) back to pending, due now, with a new
        window of retries; the same key and body."""
        query = update(_p).where(_p.c.status == "parked")
        if payout_ids is not None:
            query = query.where(_p.c.id.in_(payout_ids))
        rows = await self.conn.execute(
            query.values(
                status="pending",
                next_attempt_at=at,
                first_attempt_at=None,
                attempts=0,
                parked_at=None,
            ).returning(_p.c.id)
        )
        ids = sorted(int(r.id) for r in rows.all())
        if ids:
            self.touched = True
        return ids


def _notices(dialect: str) -> Any:
    """Payouts whose member has not been told yet, oldest first, up to ``limit``; on
    PostgreSQL held until the transaction ends (another process's look skips them)."""
    query = (
        select(_p)
        .where(_p.c.member_notice.is_not(None))
        .order_by(_p.c.id)
        .limit(bindparam("limit"))
    )
    return query.with_for_update(skip_locked=True) if dialect == "postgresql" else query
