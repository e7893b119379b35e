"""The ops slice in SQL: figures for reports (``Reports``: members by stage, envelope
and reward spend, step runs by status and start) and the HTTP API's keys.

Queries group by the small columns they need; none loads members or events one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError

from funnels.kernel.records import ApiKeyRecord, OpsActionRecord
from funnels.kernel.refusals import AlreadyExists
from funnels.kernel.stages import Stage
from funnels.ops.ports import (
    Budget,
    CohortFilter,
    CohortSummary,
    EnvelopeLine,
    EnvelopeTotals,
    RewardTotals,
)
from storage.sql import Repo, prepared
from storage.tables import (
    api_keys as _k,
    cohort_members as _m,
    cohorts as _c,
    envelope_shares as _es,
    envelopes as _e,
    ledger_entries as _l,
    ops_actions as _oa,
    payouts as _p,
    regions as _r,
    step_runs as _s,
    task_progress as _tp,
    users as _u,
)


def chosen(choice: CohortFilter) -> list[Any]:
    """The conditions of ``choice`` on cohorts joined to their region and leader."""
    conditions: list[Any] = []
    if choice.code is not None:
        conditions.append(_c.c.code == choice.code)
    if choice.region is not None:
        conditions.append(_r.c.code == choice.region)
    if choice.leader_telegram_id is not None:
        conditions.append(_u.c.telegram_id == choice.leader_telegram_id)
    if choice.status is not None:
        conditions.append(_c.c.status == choice.status)
    if choice.start_from is not None:
        conditions.append(_c.c.start_date >= choice.start_from)
    if choice.start_to is not None:
        conditions.append(_c.c.start_date <= choice.start_to)
    return conditions


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

    async def cohort_page(
        self, choice: CohortFilter, before_id: int | None, limit: int
    ) -> list[CohortSummary]:
        query = _SUMMARY.where(*chosen(choice))
        if before_id is not None:
            query = query.where(_c.c.id < before_id)
        rows = await self.conn.execute(query.order_by(_c.c.id.desc()).limit(limit))
        return [_summary(r) for r in rows.all()]

    async def task_counts(self, cohort_id: int) -> dict[str, tuple[int, int]]:
        rows = await self.conn.execute(
            select(_tp.c.task_id, func.count(), func.count(_tp.c.completed_at))
            .where(_tp.c.cohort_id == cohort_id)
            .group_by(_tp.c.task_id)
        )
        return {str(task): (int(started), int(done)) for task, started, done in rows.all()}

    async def task_payouts(self, cohort_id: int) -> dict[tuple[str, str], tuple[int, int]]:
        rows = await self.conn.execute(
            select(_p.c.task_id, _p.c.status, func.count(), func.sum(_p.c.amount_minor))
            .where(_p.c.cohort_id == cohort_id)
            .group_by(_p.c.task_id, _p.c.status)
        )
        return {(str(t), str(st)): (int(n), int(total or 0)) for t, st, n, total in rows.all()}

    async def envelope_lines(self, cohort_id: int) -> list[EnvelopeLine]:
        last = (
            select(_es.c.envelope_id, func.max(_es.c.claimed_at).label("last_claim_at"))
            .join(_e, _e.c.id == _es.c.envelope_id)
            .where(_e.c.cohort_id == cohort_id, _es.c.claimed_at.is_not(None))
            .group_by(_es.c.envelope_id)
            .subquery()
        )
        rows = await self.conn.execute(
            select(
                _e.c.step_key,
                _e.c.opened_at,
                _e.c.expires_at,
                _e.c.closed_at,
                _e.c.currency,
                _e.c.total_minor,
                _e.c.shares,
                _e.c.claimed,
                _e.c.claimed_minor,
                last.c.last_claim_at,
            )
            .outerjoin(last, last.c.envelope_id == _e.c.id)
            .where(_e.c.cohort_id == cohort_id)
            .order_by(_e.c.opened_at, _e.c.id)
        )
        return [EnvelopeLine(**r._mapping) for r in rows.all()]

    async def cohort_summary(self, cohort_id: int) -> CohortSummary | None:
        row = (await self.conn.execute(_SUMMARY.where(_c.c.id == cohort_id))).first()
        return _summary(row) if row else None


_SUMMARY = (
    select(
        _c.c.id,
        _c.c.code,
        _c.c.status,
        _c.c.status_reason,
        _r.c.code.label("region"),
        _u.c.telegram_id.label("leader_telegram_id"),
        _u.c.display_name.label("leader_name"),
        _c.c.script_id,
        _c.c.script_version,
        _c.c.locale,
        _c.c.timezone,
        _c.c.capacity,
        _c.c.start_date,
        _c.c.ends_at,
        _c.c.currency,
        _c.c.budget_minor,
        _c.c.spent_minor,
        _c.c.parent_cohort_id,
        _c.c.generation,
        _c.c.created_at,
        _c.c.finished_at,
        _c.c.admission,
    )
    .select_from(_c)
    .outerjoin(_r, _r.c.id == _c.c.region_id)
    .outerjoin(_u, _u.c.id == _c.c.leader_id)
)


def _summary(row: Any) -> CohortSummary:
    return CohortSummary(**row._mapping)


def _key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id, row.name, row.prefix, row.created_at, row.last_used_at, row.revoked_at
    )


_KEY_COLUMNS = (_k.c.id, _k.c.name, _k.c.prefix, _k.c.created_at, _k.c.last_used_at)


class SqlApiKeys(Repo):
    async def add(self, name: str, key_hash: str, prefix: str, at: datetime) -> ApiKeyRecord:
        try:
            async with self.conn.begin_nested():
                row = (
                    await self.conn.execute(
                        _k.insert()
                        .values(name=name, key_hash=key_hash, prefix=prefix, created_at=at)
                        .returning(*_KEY_COLUMNS, _k.c.revoked_at)
                    )
                ).one()
        except IntegrityError:
            raise AlreadyExists(f"an API key named {name} exists") from None
        return _key(row)

    async def all(self) -> list[ApiKeyRecord]:
        rows = await self.conn.execute(select(*_KEY_COLUMNS, _k.c.revoked_at).order_by(_k.c.id))
        return [_key(r) for r in rows.all()]

    async def by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        statement = prepared(
            "api_key_by_hash",
            self.dialect,
            lambda: select(*_KEY_COLUMNS, _k.c.revoked_at).where(
                _k.c.key_hash == bindparam("key_hash")
            ),
        )
        row = (await self.conn.execute(statement, {"key_hash": key_hash})).first()
        return _key(row) if row else None

    async def revoke(self, name: str, at: datetime) -> ApiKeyRecord | None:
        row = (
            await self.conn.execute(
                _k.update()
                .where(_k.c.name == name, _k.c.revoked_at.is_(None))
                .values(revoked_at=at)
                .returning(*_KEY_COLUMNS, _k.c.revoked_at)
            )
        ).first()
        return _key(row) if row else None

    async def touch(self, key_id: int, at: datetime) -> None:
        await self.conn.execute(_k.update().where(_k.c.id == key_id).values(last_used_at=at))

    async def live(self) -> dict[str, ApiKeyRecord]:
        rows = await self.conn.execute(
            select(*_KEY_COLUMNS, _k.c.revoked_at, _k.c.key_hash).where(_k.c.revoked_at.is_(None))
        )
        return {r.key_hash: _key(r) for r in rows}


class SqlOpsActions(Repo):
    async def record(
        self,
        cohort_id: int,
        api_key_id: int | None,
        by: str,
        action: str,
        detail: str | None,
        at: datetime,
    ) -> None:
        await self.conn.execute(
            _oa.insert().values(
                cohort_id=cohort_id,
                api_key_id=api_key_id,
                by=by,
                action=action,
                detail=detail,
                at=at,
            )
        )

    async def for_cohort(self, cohort_id: int) -> list[OpsActionRecord]:
        rows = await self.conn.execute(
            select(_oa).where(_oa.c.cohort_id == cohort_id).order_by(_oa.c.id)
        )
        return [
            OpsActionRecord(r.id, r.cohort_id, r.api_key_id, r.by, r.action, r.detail, r.at)
            for r in rows.all()
        ]
