"""The KPIs in SQL: cohorts with their members per funnel stage summed from the rollups
(``funnel_days``), a cohort's days, regions, and the few rows red flags look for (steps
in ``unknown``, parked payouts), each read through an index."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, func, select

from funnels.kernel.rollups import FunnelCounts
from funnels.kernel.stages import Stage
from funnels.ops.ports import CohortFigures, CohortFilter, RegionLine, RemindedMember
from storage.ops import chosen
from storage.reminders import as_utc
from storage.rollups import TIME_COLUMNS, read_activity, read_funnel, stage_times
from storage.sql import Repo, prepared
from storage.tables import (
    cohort_members as _m,
    cohorts as _c,
    funnel_days as _fd,
    member_reminders as _mr,
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
        if ids is not None and len(ids) == 1 and choice == CohortFilter() and not active_only:
            # One cohort (its funnel, a page of the dashboard): a statement built once.
            statement = prepared(
                "cohort_figures", self.dialect, lambda: _figures(_c.c.id == bindparam("id"))
            )
            return _assemble(await self.conn.execute(statement, {"id": ids[0]}))
        conditions = chosen(choice)
        if active_only:
            conditions.append(_c.c.status.in_(_ACTIVE))
        if ids is not None:
            conditions.append(_c.c.id.in_(list(ids)))
        return _assemble(await self.conn.execute(_figures(*conditions)))

    async def figures_page(self, after_id: int, limit: int) -> list[CohortFigures]:
        page = select(_c.c.id).where(_c.c.id > after_id).order_by(_c.c.id).limit(limit)
        return _assemble(await self.conn.execute(_figures(_c.c.id.in_(page.scalar_subquery()))))

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

    async def reminded(
        self, cohort_ids: Sequence[int], segments: Sequence[str]
    ) -> list[RemindedMember]:
        if not cohort_ids or not segments:
            return []
        first = (
            select(
                _mr.c.cohort_id,
                _mr.c.user_id,
                _mr.c.segment,
                func.min(_mr.c.claimed_at).label("first_at"),
            )
            .where(
                _mr.c.cohort_id.in_(list(cohort_ids)),
                _mr.c.segment.in_(list(segments)),
                _mr.c.delivered.is_(True),
            )
            .group_by(_mr.c.cohort_id, _mr.c.user_id, _mr.c.segment)
            .subquery()
        )
        rows = await self.conn.execute(
            select(first, *TIME_COLUMNS)
            .join(_m, (_m.c.cohort_id == first.c.cohort_id) & (_m.c.user_id == first.c.user_id))
            .order_by(first.c.cohort_id, first.c.user_id, first.c.segment)
        )
        return [
            RemindedMember(
                r.cohort_id,
                r.user_id,
                r.segment,
                as_utc(r.first_at),  # type: ignore[arg-type]  # (never null: a min of rows)
                {s: as_utc(t) for s, t in stage_times(r).items()},
            )
            for r in rows
        ]

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


_FIGURE_COLUMNS = (
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


def _figures(*conditions: Any) -> Any:
    """Cohorts with their members per stage summed from the rollups, in one statement:
    a row per cohort and stage (one with a null stage for a cohort with no members)."""
    return (
        select(*_FIGURE_COLUMNS, _fd.c.stage, func.sum(_fd.c.members).label("members"))
        .outerjoin(_r, _r.c.id == _c.c.region_id)
        .outerjoin(_u, _u.c.id == _c.c.leader_id)
        .outerjoin(_fd, _fd.c.cohort_id == _c.c.id)
        .where(*conditions)
        .group_by(*_FIGURE_COLUMNS, _fd.c.stage)
        .order_by(_c.c.id)
    )


def _assemble(rows: Any) -> list[CohortFigures]:
    out: list[CohortFigures] = []
    for row in rows:
        if not out or out[-1].id != row.id:
            fields = {c.name: row._mapping[c.name] for c in _FIGURE_COLUMNS}
            out.append(CohortFigures(**fields, stages=dict.fromkeys(Stage, 0)))
        if row.stage is not None:
            out[-1].stages[Stage(row.stage)] = int(row.members or 0)
    return out
