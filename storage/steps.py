"""Step runs in SQL: the scheduling outbox, claimed one at a time with a lease."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, or_, select, update

from funnels.kernel.records import (
    TALK_PART_KINDS,
    PlanKind,
    PlanStage,
    StepRunRecord,
    StepStatus,
)
from funnels.scripts.planner import PlannedStep
from storage.db import insert_ignore
from storage.sql import Repo, prepared
from storage.tables import (
    cohorts as _c,
    step_runs as _s,
)

_TALK_KINDS = sorted(k.value for k in TALK_PART_KINDS)


def _in_claim_order(column: Any) -> Any:
    """``column`` of the runs the tick may claim, in the order it claims them (due time,
    then id): the order of the (status, due_at, id) index, read off it."""
    return (
        select(column)
        .join(_c, _c.c.id == _s.c.cohort_id)
        .where(*_claimable())
        .order_by(_s.c.due_at, _s.c.id)
    )


def _claim_due(dialect: str) -> Any:
    """Claim up to ``:limit`` runs due by ``:now`` for ``:owner`` until ``:lease_until``
    (built once: the hot path of every tick)."""
    due = _in_claim_order(_s.c.id).where(_s.c.due_at <= bindparam("now")).limit(bindparam("limit"))
    chosen: Any = due.scalar_subquery()
    if dialect == "postgresql":
        # Materialized, the choice is made once. As a plain IN subquery PostgreSQL may run
        # it again for each row it updates, and then (skipping the rows this very
        # statement just claimed) claim more than ``limit``.
        cte = due.with_for_update(of=_s, skip_locked=True).cte("due")
        chosen = select(cte.prefix_with("MATERIALIZED").c.id)
    return (
        update(_s)
        .where(_s.c.id.in_(chosen), _s.c.status == "pending")
        .values(
            status="running",
            lease_owner=bindparam("owner"),
            lease_until=bindparam("lease_until"),
            attempts=_s.c.attempts + 1,
            started_at=bindparam("now"),
        )
        .returning(*_s.c)
    )


def _step(row: Any) -> StepRunRecord:
    return StepRunRecord(
        id=row.id,
        cohort_id=row.cohort_id,
        key=row.key,
        source=row.source,
        kind=PlanKind(row.kind),
        stage=PlanStage(row.stage),
        day=row.day,
        part=row.part,
        due_at=row.due_at,
        status=row.status,
        attempts=row.attempts,
        started_at=row.started_at,
        outcome=row.outcome,
        error=row.error,
    )


def _claimable() -> tuple[Any, ...]:
    """Conditions of a run the tick may claim once due (with step_runs joined to cohorts).

    A talk part waits while an earlier part of its talk is not done or skipped: running
    (another process is sending it), pending, or unknown/failed (a decision is needed; its
    later parts are held). So parts go out in order whatever the number of ticking
    processes, and never after a part whose fate nobody has decided.
    """
    earlier = _s.alias("earlier")
    unfinished_earlier = (
        select(earlier.c.id)
        .where(
            earlier.c.cohort_id == _s.c.cohort_id,
            earlier.c.source == _s.c.source,
            earlier.c.kind == _s.c.kind,
            earlier.c.part < _s.c.part,
            earlier.c.status.not_in(("done", "skipped")),
        )
        .exists()
    )
    return (
        _s.c.status == "pending",
        _c.c.status == "running",
        or_(_s.c.kind.not_in(_TALK_KINDS), ~unfinished_earlier),
    )


class SqlSteps(Repo):
    async def add_plan(self, cohort_id: int, steps: Sequence[PlannedStep]) -> int:
        if not steps:
            return 0
        rows = [
            {
                "cohort_id": cohort_id,
                "key": s.key,
                "source": s.source,
                "kind": s.kind,
                "stage": s.stage,
                "day": s.day,
                "part": s.part,
                "due_at": s.due_at,
                "status": "pending",
                "attempts": 0,
            }
            for s in steps
        ]
        result = await self.conn.execute(insert_ignore(self.dialect, _s, "cohort_id", "key"), rows)
        return max(result.rowcount, 0)

    async def claim_due(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[StepRunRecord]:
        claim = prepared("steps.claim_due", self.dialect, lambda: _claim_due(self.dialect))
        params = {"now": now, "owner": owner, "lease_until": lease_until, "limit": limit}
        rows = (await self.conn.execute(claim, params)).all()
        return sorted((_step(r) for r in rows), key=lambda r: (r.due_at, r.id))

    async def expire_leases(self, now: datetime) -> list[StepRunRecord]:
        statement = prepared(
            "steps.expire_leases",
            self.dialect,
            lambda: (
                update(_s)
                .where(_s.c.status == "running", _s.c.lease_until < bindparam("now"))
                .values(
                    status="unknown",
                    finished_at=bindparam("now"),
                    error="the process stopped while sending; not re-sent automatically",
                )
                .returning(*_s.c)
            ),
        )
        rows = (await self.conn.execute(statement, {"now": now})).all()
        return [_step(r) for r in rows]

    async def hold_later_parts(self, cohort_id: int, source: str, part: int, reason: str) -> int:
        result = await self.conn.execute(
            update(_s)
            .where(
                _s.c.cohort_id == cohort_id,
                _s.c.source == source,
                _s.c.kind.in_(_TALK_KINDS),
                _s.c.part > part,
                _s.c.status == "pending",
            )
            .values(status="held", error=reason)
        )
        return max(result.rowcount, 0)

    async def talk_parts(self, cohort_id: int, source: str) -> list[StepRunRecord]:
        rows = (
            await self.conn.execute(
                select(_s)
                .where(
                    _s.c.cohort_id == cohort_id,
                    _s.c.source == source,
                    _s.c.kind.in_(_TALK_KINDS),
                )
                .order_by(_s.c.part)
            )
        ).all()
        return [_step(r) for r in rows]

    async def release_held(self, run_id: int, due_at: datetime) -> bool:
        result = await self.conn.execute(
            update(_s)
            .where(_s.c.id == run_id, _s.c.status == "held")
            .values(status="pending", due_at=due_at, error=None)
        )
        return result.rowcount == 1

    async def skip(self, cohort_id: int, key: str, at: datetime, reason: str) -> bool:
        result = await self.conn.execute(
            update(_s)
            .where(
                _s.c.cohort_id == cohort_id,
                _s.c.key == key,
                _s.c.status.in_(("unknown", "failed")),
            )
            .values(status="skipped", finished_at=at, error=reason, lease_owner=None)
        )
        return result.rowcount == 1

    async def finish(
        self,
        run_id: int,
        status: StepStatus,
        at: datetime,
        outcome: Mapping[str, object] | None = None,
        error: str | None = None,
    ) -> None:
        statement = prepared(
            "steps.finish",
            self.dialect,
            lambda: (
                update(_s)
                .where(_s.c.id == bindparam("run_id"))
                .values(
                    status=bindparam("status"),
                    finished_at=bindparam("at"),
                    outcome=bindparam("outcome"),
                    error=bindparam("error"),
                    lease_until=None,  # the owner stays: which process ran it
                )
            ),
        )
        params = {
            "run_id": run_id,
            "status": status,
            "at": at,
            "outcome": dict(outcome) if outcome else None,
            "error": error,
        }
        await self.conn.execute(statement, params)

    async def postpone(self, run_id: int, due_at: datetime) -> None:
        await self.conn.execute(
            update(_s)
            .where(_s.c.id == run_id)
            .values(status="pending", due_at=due_at, lease_owner=None, lease_until=None)
        )

    async def release_claim(self, run_id: int) -> None:
        await self.conn.execute(
            update(_s)
            .where(_s.c.id == run_id, _s.c.status == "running")
            .values(status="pending", lease_owner=None, lease_until=None)
        )

    async def timeline(self, cohort_id: int) -> list[StepRunRecord]:
        rows = await self.conn.execute(
            select(_s).where(_s.c.cohort_id == cohort_id).order_by(_s.c.due_at, _s.c.id)
        )
        return [_step(r) for r in rows.all()]

    async def get(self, cohort_id: int, key: str) -> StepRunRecord | None:
        row = (
            await self.conn.execute(select(_s).where(_s.c.cohort_id == cohort_id, _s.c.key == key))
        ).first()
        return _step(row) if row else None

    async def retry(self, cohort_id: int, key: str, at: datetime, by: str | None = None) -> bool:
        # An ops retry means "run it now": due now, so the late policy does not skip it.
        result = await self.conn.execute(
            update(_s)
            .where(
                _s.c.cohort_id == cohort_id,
                _s.c.key == key,
                _s.c.status.in_(("unknown", "failed", "skipped")),
            )
            .values(
                status="pending",
                due_at=at,
                error=None,
                finished_at=None,
                lease_owner=None,
                **({"outcome": {"retried_by": by}} if by else {}),
            )
        )
        return result.rowcount == 1

    async def next_due_at(self) -> datetime | None:
        """When the first run the tick could claim is due: the first in claim order, which
        stops at the first claimable run on the index, where the least due time of all
        (``min``) read every pending run with its cohort and talk, at the end of every
        tick of every process."""
        statement = prepared(
            "steps.next_due_at",
            self.dialect,
            lambda: _in_claim_order(_s.c.due_at).limit(1),
        )
        return cast(datetime | None, (await self.conn.execute(statement)).scalar())

    async def next_pending(self, cohort_id: int) -> StepRunRecord | None:
        row = (
            await self.conn.execute(
                select(_s)
                .where(_s.c.cohort_id == cohort_id, _s.c.status == "pending")
                .order_by(_s.c.due_at, _s.c.id)
                .limit(1)
            )
        ).first()
        return _step(row) if row else None

    async def attention(self, cohort_id: int) -> list[StepRunRecord]:
        rows = (
            await self.conn.execute(
                select(_s)
                .where(_s.c.cohort_id == cohort_id, _s.c.status.in_(("unknown", "failed", "held")))
                .order_by(_s.c.due_at, _s.c.id)
            )
        ).all()
        return [_step(r) for r in rows]
