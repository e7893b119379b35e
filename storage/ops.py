"""Figures for reports in SQL (the ops slice's ``Reports``): members by stage, envelope
and reward spend, step runs by status and start.

Queries group by the small columns they need; none loads members or events one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select

from funnels.kernel.stages import Stage
from funnels.ops.ports import Budget, EnvelopeTotals, RewardTotals
from storage.sql import Repo
from storage.tables import (
    cohort_members as _m,
    cohorts as _c,
    envelopes as _e,
    ledger_entries as _l,
    payouts as _p,
    step_runs as _s,
    task_progress as _tp,
)


class SqlReports(Repo):
    async def stage_counts(self, cohort_ids: Sequence[int]) -> dict[Stage, int]:
        rows = await self.conn.execute(
            select(_m.c.stage, func.count())
            .where(_m.c.cohort_id.in_(cohort_ids))
            .group_by(_m.c.stage)
        )
        return {Stage(stage): int(n) for stage, n in rows.all()}

    async def members_left(self, cohort_ids: Sequence[int]) -> int:
        query = (
            select(func.count())
            .select_from(_m)
            .where(_m.c.cohort_id.in_(cohort_ids), _m.c.left_at.is_not(None))
        )
        return int((await self.conn.execute(query)).scalar_one())

    async def budget(self, cohort_ids: Sequence[int]) -> Budget:
        total, currency = (
            await self.conn.execute(
                select(
                    func.coalesce(func.sum(_c.c.budget_minor), 0), func.min(_c.c.currency)
                ).where(_c.c.id.in_(cohort_ids))
            )
        ).one()
        return Budget(int(total), currency)

    async def envelopes(self, cohort_ids: Sequence[int]) -> EnvelopeTotals:
        count, planned, claimed_minor, claims = (
            await self.conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(_e.c.total_minor), 0),
                    func.coalesce(func.sum(_e.c.claimed_minor), 0),
                    func.coalesce(func.sum(_e.c.claimed), 0),
                ).where(_e.c.cohort_id.in_(cohort_ids))
            )
        ).one()
        return EnvelopeTotals(int(count), int(planned), int(claimed_minor), int(claims))

    async def rewards(self, cohort_ids: Sequence[int]) -> RewardTotals:
        paid, paid_minor = (
            await self.conn.execute(
                select(func.count(), func.coalesce(func.sum(_l.c.amount_minor), 0)).where(
                    _l.c.cohort_id.in_(cohort_ids), _l.c.kind == "reward"
                )
            )
        ).one()
        return RewardTotals(int(paid), int(paid_minor))

    async def payouts(self, cohort_ids: Sequence[int]) -> dict[str, tuple[int, int]]:
        rows = await self.conn.execute(
            select(_p.c.status, func.count(), func.coalesce(func.sum(_p.c.amount_minor), 0))
            .where(_p.c.cohort_id.in_(cohort_ids))
            .group_by(_p.c.status)
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    async def tasks_completed(self, cohort_ids: Sequence[int]) -> dict[str, int]:
        rows = await self.conn.execute(
            select(_tp.c.task_id, func.count())
            .where(_tp.c.cohort_id.in_(cohort_ids), _tp.c.completed_at.is_not(None))
            .group_by(_tp.c.task_id)
        )
        return {str(task): int(n) for task, n in rows.all()}

    async def step_status(self, cohort_ids: Sequence[int]) -> dict[str, int]:
        rows = await self.conn.execute(
            select(_s.c.status, func.count())
            .where(_s.c.cohort_id.in_(cohort_ids))
            .group_by(_s.c.status)
        )
        return {str(status): int(n) for status, n in rows.all()}

    async def step_starts(self, cohort_ids: Sequence[int]) -> list[tuple[datetime, datetime]]:
        rows = await self.conn.execute(
            select(_s.c.due_at, _s.c.started_at).where(
                _s.c.cohort_id.in_(cohort_ids), _s.c.started_at.is_not(None)
            )
        )
        return [(due, started) for due, started in rows.all()]
