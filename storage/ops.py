"""Read models for reports: the funnel by stage, envelope and reward spend, step lateness.

Queries group by the small columns they need; none loads members or events one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from funnels.kernel.stages import Stage
from storage.tables import (
    cohort_members as _m,
    cohorts as _c,
    envelopes as _e,
    ledger_entries as _l,
    step_runs as _s,
    task_progress as _tp,
)


@dataclass
class FunnelReport:
    cohorts: int
    stages: dict[str, int]
    """Members who reached each stage or went further (the funnel's fixed definition)."""
    left: int
    currency: str
    budget_minor: int
    envelope_planned_minor: int
    envelope_claimed_minor: int
    envelope_claims: int
    envelopes: int
    rewards_paid_minor: int
    rewards_paid: int
    rewards_over_budget: int
    tasks_completed: dict[str, int]
    step_status: dict[str, int]
    lateness_seconds: list[int] = field(default_factory=list)

    def conversions(self) -> list[tuple[str, int, float | None]]:
        """(stage, count, share of the previous stage) in funnel order."""
        out: list[tuple[str, int, float | None]] = []
        previous: int | None = None
        for stage in Stage:
            count = self.stages.get(stage.label, 0)
            out.append((stage.label, count, (count / previous) if previous else None))
            previous = count
        return out


async def funnel_report(conn: AsyncConnection, cohort_ids: Sequence[int]) -> FunnelReport:
    ids = list(cohort_ids)
    by_stage: dict[int, int] = dict(
        (
            await conn.execute(
                select(_m.c.stage, func.count()).where(_m.c.cohort_id.in_(ids)).group_by(_m.c.stage)
            )
        ).all()
    )
    stages: dict[str, int] = {}
    running = 0
    for stage in reversed(Stage):
        running += int(by_stage.get(int(stage), 0))
        stages[stage.label] = running
    left = (
        await conn.execute(
            select(func.count())
            .select_from(_m)
            .where(_m.c.cohort_id.in_(ids), _m.c.left_at.is_not(None))
        )
    ).scalar_one()
    budget = (
        await conn.execute(
            select(func.coalesce(func.sum(_c.c.budget_minor), 0), func.min(_c.c.currency)).where(
                _c.c.id.in_(ids)
            )
        )
    ).one()
    env = (
        await conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(_e.c.total_minor), 0),
                func.coalesce(func.sum(_e.c.claimed_minor), 0),
                func.coalesce(func.sum(_e.c.claimed), 0),
            ).where(_e.c.cohort_id.in_(ids))
        )
    ).one()
    rewards = (
        await conn.execute(
            select(func.count(), func.coalesce(func.sum(_l.c.amount_minor), 0)).where(
                _l.c.cohort_id.in_(ids), _l.c.kind == "reward"
            )
        )
    ).one()
    over = (
        await conn.execute(
            select(func.count())
            .select_from(_tp)
            .where(_tp.c.cohort_id.in_(ids), _tp.c.reward_status == "over_budget")
        )
    ).scalar_one()
    completed: dict[str, int] = dict(
        (
            await conn.execute(
                select(_tp.c.task_id, func.count())
                .where(_tp.c.cohort_id.in_(ids), _tp.c.completed_at.is_not(None))
                .group_by(_tp.c.task_id)
            )
        ).all()
    )
    status: dict[str, int] = dict(
        (
            await conn.execute(
                select(_s.c.status, func.count())
                .where(_s.c.cohort_id.in_(ids))
                .group_by(_s.c.status)
            )
        ).all()
    )
    lateness = [
        max(0, int((started - due).total_seconds()))
        for due, started in (
            await conn.execute(
                select(_s.c.due_at, _s.c.started_at).where(
                    _s.c.cohort_id.in_(ids), _s.c.started_at.is_not(None)
                )
            )
        ).all()
    ]
    return FunnelReport(
        cohorts=len(ids),
        stages=stages,
        left=int(left),
        currency=str(budget[1] or ""),
        budget_minor=int(budget[0]),
        envelopes=int(env[0]),
        envelope_planned_minor=int(env[1]),
        envelope_claimed_minor=int(env[2]),
        envelope_claims=int(env[3]),
        rewards_paid=int(rewards[0]),
        rewards_paid_minor=int(rewards[1]),
        rewards_over_budget=int(over),
        tasks_completed={str(k): int(v) for k, v in completed.items()},
        step_status={str(k): int(v) for k, v in status.items()},
        lateness_seconds=sorted(lateness),
    )
