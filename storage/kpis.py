"""The KPIs in SQL: cohorts with their members per funnel stage summed from the rollups
(``funnel_days``), a cohort's days, regions, and the few rows red flags look for (steps
in ``unknown``, parked payouts), each read through an index."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, select

from funnels.kernel.rollups import FunnelCounts
from funnels.kernel.stages import Stage
from funnels.ops.ports import CohortFigures, CohortFilter, RegionLine
from storage.rollups import read_activity, read_funnel
from storage.sql import Repo
from storage.tables import (
    cohorts as _c,
    funnel_days as _fd,
    payouts as _p,
    regions as _r,
    step_runs as _s,
    users as _u,
)

_ACTIVE = ("running", "paused")


class SqlKpis(Repo):
    async def cohort_figures(
        self,
        choice: CohortFilter,
        *,
        active_only: bool = False,
        ids: Sequence[int] | None = None,
    ) -> list[CohortFigures]:
        query = (
            select(
                _c.c.id,
                _c.c.code,
                _c.c.status,
                _r.c.code.label("region"),
                _u.c.telegram_id.label("leader_telegram_id"),
                _u.c.display_name.label("leader_name"),
                _c.c.parent_cohort_id,
                _c.c.generation,
                _c.c.start_date,
                _c.c.capacity,
                _c.c.currency,
                _c.c.budget_minor,
                _c.c.spent_minor,
                _c.c.pitch_opened_at,
                _c.c.script_hash,
            )
            .outerjoin(_r, _r.c.id == _c.c.region_id)
            .outerjoin(_u, _u.c.id == _c.c.leader_id)
        )
        if active_only:
            query = query.where(_c.c.status.in_(_ACTIVE))
        if ids is not None:
            query = query.where(_c.c.id.in_(list(ids)))
        if choice.code is not None:
            query = query.where(_c.c.code == choice.code)
        if choice.region is not None:
            query = query.where(_r.c.code == choice.region)
        if choice.leader_telegram_id is not None:
            query = query.where(_u.c.telegram_id == choice.leader_telegram_id)
        if choice.status is not None:
            query = query.where(_c.c.status == choice.status)
        if choice.start_from is not None:
            query = query.where(_c.c.start_date >= choice.start_from)
        if choice.start_to is not None:
            query = query.where(_c.c.start_date <= choice.start_to)
        rows = (await self.conn.execute(query.order_by(_c.c.id))).all()
        if not rows:
            return []
        chosen = query.with_only_columns(_c.c.id).subquery()
        totals = await self.conn.execute(
            select(_fd.c.cohort_id, _fd.c.stage, func.sum(_fd.c.members))
            .where(_fd.c.cohort_id.in_(select(chosen.c.id)))
            .group_by(_fd.c.cohort_id, _fd.c.stage)
        )
        stages: dict[int, dict[Stage, int]] = defaultdict(lambda: dict.fromkeys(Stage, 0))
        for cohort_id, stage, n in totals:
            stages[cohort_id][Stage(stage)] = int(n)
        return [CohortFigures(**r._mapping, stages=dict(stages[r.id])) for r in rows]

    async def funnel_days(self, cohort_id: int) -> FunnelCounts:
        return await read_funnel(self.conn, cohort_id)

    async def activity_days(self, cohort_id: int) -> dict[date, tuple[int, int]]:
        return await read_activity(self.conn, cohort_id)

    async def regions(self) -> list[RegionLine]:
        rows = await self.conn.execute(
            select(_r.c.code, _r.c.name, _r.c.weekly_target).order_by(_r.c.code)
        )
        return [RegionLine(r.code, r.name, int(r.weekly_target)) for r in rows]

    async def unknown_steps(self) -> dict[int, int]:
        rows = await self.conn.execute(
            select(_s.c.cohort_id, func.count())
            .join(_c, _c.c.id == _s.c.cohort_id)
            .where(_s.c.status == "unknown", _c.c.status.in_(_ACTIVE))
            .group_by(_s.c.cohort_id)
        )
        return {int(c): int(n) for c, n in rows}

    async def parked_payouts(self) -> dict[int, tuple[int, int]]:
        rows = await self.conn.execute(
            select(_p.c.cohort_id, func.count(), func.sum(_p.c.amount_minor))
            .where(_p.c.status == "parked")
            .group_by(_p.c.cohort_id)
        )
        return {int(c): (int(n), int(total or 0)) for c, n, total in rows}

    async def script_bodies(self, hashes: Sequence[str]) -> dict[str, str]:
        if not hashes:
            return {}
        first = (
            select(_c.c.script_hash, func.min(_c.c.id).label("id"))
            .where(_c.c.script_hash.in_(list(hashes)))
            .group_by(_c.c.script_hash)
            .subquery()
        )
        rows = await self.conn.execute(
            select(_c.c.script_hash, _c.c.script_body).join(first, first.c.id == _c.c.id)
        )
        return {r.script_hash: r.script_body for r in rows}
