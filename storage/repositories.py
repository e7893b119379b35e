"""Repositories implementing :mod:`funnels.ports` over SQLAlchemy Core.

Each :class:`SqlTransaction` wraps one database transaction on one connection; the use
case that opened it decides when to commit. Statements are Core, not ORM, because the
hot paths (envelope taps, event ingestion, the tick) are simple and run thousands of
times a second.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import ARRAY, any_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from funnels.planner import PlannedStep
from funnels.ports import (
    AlreadyExists,
    CohortRecord,
    CohortStatus,
    EnvelopeRecord,
    IncomingEvent,
    InviteLinkRecord,
    LedgerCredit,
    MemberRef,
    NewCohort,
    RegionRecord,
    ShareClaim,
    StepRunRecord,
    StepStatus,
    TaskProgressRecord,
)
from funnels.stages import Stage
from storage.db import insert_ignore
from storage.tables import (
    cohort_members as _m,
    cohorts as _c,
    envelope_shares as _es,
    envelopes as _e,
    inbound_events as _ev,
    invite_links as _il,
    ledger_entries as _l,
    member_activity as _a,
    regions as _r,
    step_runs as _s,
    task_progress as _tp,
    task_unique_keys as _tu,
    users as _u,
)
from storage.updates import SqlUpdates

# What a member reads in: the locale they chose with /lang, else their app's language.
_LANGUAGE = func.coalesce(_u.c.chosen_locale, _u.c.language).label("language")

_STAGE_COLUMN = {
    Stage.JOINED: "joined_at",
    Stage.ENGAGED: "engaged_at",
    Stage.REPLIED: "replied_at",
    Stage.ADMITTED: "admitted_at",
    Stage.TASKED: "tasked_at",
    Stage.SOLD: "sold_at",
    Stage.SHOPKEEPER: "shopkeeper_at",
    Stage.SUPERVISOR: "supervisor_at",
}

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


_PREPARED: dict[tuple[str, str], Any] = {}


def _prepared(name: str, dialect: str, build: Callable[[], Any]) -> Any:
    """A statement built once per dialect with bind parameters.

    Building a SQLAlchemy expression and its cache key costs more than running it on
    SQLite; the hot paths (taps, replies, events) reuse one statement object instead.
    """
    key = (name, dialect)
    statement = _PREPARED.get(key)
    if statement is None:
        statement = _PREPARED[key] = build()
    return statement


def _one_of(dialect: str, column: Any, name: str, values: Sequence[Any] | None = None) -> Any:
    """``column IN (...)`` for a list bound as ``name`` (or the given ``values``).

    On PostgreSQL it is ``column = ANY(:name)`` with the list as one array parameter: the
    SQL text stays the same whatever the list's length, so the server plans it once and
    asyncpg's prepared statement is reused, where an IN list of a new length is a new
    statement to prepare on every batch.
    """
    if dialect == "postgresql":
        return column == any_(bindparam(name, values, type_=ARRAY(column.type)))
    if values is None:
        return column.in_(bindparam(name, expanding=True))
    return column.in_(values)


def _greatest(dialect: str, column: Any, value: Any) -> Any:
    return func.max(column, value) if dialect == "sqlite" else func.greatest(column, value)


def new_code(length: int = 8) -> str:
    """A short code without look-alike characters, for links and /taskgroup."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


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
    )


def _step(row: Any) -> StepRunRecord:
    return StepRunRecord(
        id=row.id,
        cohort_id=row.cohort_id,
        key=row.key,
        source=row.source,
        kind=row.kind,
        stage=row.stage,
        day=row.day,
        part=row.part,
        due_at=row.due_at,
        status=row.status,
        attempts=row.attempts,
        started_at=row.started_at,
        outcome=row.outcome,
        error=row.error,
    )


def _envelope(row: Any) -> EnvelopeRecord:
    return EnvelopeRecord(
        id=row.id,
        cohort_id=row.cohort_id,
        step_key=row.step_key,
        currency=row.currency,
        total_minor=row.total_minor,
        shares=row.shares,
        claimed=row.claimed,
        claimed_minor=row.claimed_minor,
        chat_id=row.chat_id,
        message_id=row.message_id,
        expires_at=row.expires_at,
        closed_at=row.closed_at,
    )


class _Repo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name


class SqlCohorts(_Repo):
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
        statement = _prepared(
            "cohort", self.dialect, lambda: select(_c).where(_c.c.id == bindparam("id"))
        )
        row = (await self.conn.execute(statement, {"id": cohort_id})).first()
        return _cohort(row) if row else None

    async def by_code(self, code: str) -> CohortRecord | None:
        row = (await self.conn.execute(select(_c).where(_c.c.code == code))).first()
        return _cohort(row) if row else None

    async def by_chat(self, chat_id: int) -> CohortRecord | None:
        statement = _prepared(
            "cohort_by_chat",
            self.dialect,
            lambda: select(_c).where(
                (_c.c.warmup_chat_id == bindparam("chat"))
                | (_c.c.task_chat_id == bindparam("chat"))
            ),
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

    async def open_pitch(self, cohort_id: int, at: datetime) -> None:
        await self.conn.execute(
            update(_c)
            .where(_c.c.id == cohort_id, _c.c.pitch_opened_at.is_(None))
            .values(pitch_opened_at=at)
        )

    async def bind_task_chat(self, cohort_id: int, chat_id: int) -> None:
        await self.conn.execute(update(_c).where(_c.c.id == cohort_id).values(task_chat_id=chat_id))

    async def open_pitches(self) -> list[CohortRecord]:
        rows = (
            await self.conn.execute(
                select(_c).where(
                    _c.c.status == "running",
                    _c.c.pitch_opened_at.is_not(None),
                    _c.c.pitch_closed_at.is_(None),
                )
            )
        ).all()
        return [_cohort(r) for r in rows]

    async def note_admissions(
        self, cohort_id: int, previous: datetime | None, at: datetime
    ) -> bool:
        stamp = _c.c.admissions_noted_at
        result = await self.conn.execute(
            update(_c)
            .where(_c.c.id == cohort_id, stamp.is_(None) if previous is None else stamp == previous)
            .values(admissions_noted_at=at)
        )
        return result.rowcount == 1

    async def finish_due(self, now: datetime) -> list[int]:
        open_steps = (
            select(_s.c.id)
            .where(_s.c.cohort_id == _c.c.id, _s.c.status.in_(("pending", "running")))
            .exists()
        )
        rows = (
            await self.conn.execute(
                update(_c)
                .where(_c.c.status == "running", _c.c.ends_at <= now, ~open_steps)
                .values(status="finished", finished_at=now)
                .returning(_c.c.id)
            )
        ).all()
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
        result = await self.conn.execute(
            update(_c)
            .where(_c.c.id == cohort_id, _c.c.spent_minor + amount_minor <= _c.c.budget_minor)
            .values(spent_minor=_c.c.spent_minor + amount_minor)
        )
        return result.rowcount == 1

    async def release(self, cohort_id: int, amount_minor: int) -> None:
        await self.conn.execute(
            update(_c)
            .where(_c.c.id == cohort_id)
            .values(spent_minor=_c.c.spent_minor - amount_minor)
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
            earlier.c.kind == "talk_part",
            earlier.c.part < _s.c.part,
            earlier.c.status.not_in(("done", "skipped")),
        )
        .exists()
    )
    return (
        _s.c.status == "pending",
        _c.c.status == "running",
        or_(_s.c.kind != "talk_part", ~unfinished_earlier),
    )


class SqlSteps(_Repo):
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
        due = (
            select(_s.c.id)
            .join(_c, _c.c.id == _s.c.cohort_id)
            .where(_s.c.due_at <= now, *_claimable())
            .order_by(_s.c.due_at, _s.c.id)
            .limit(limit)
        )
        chosen: Any = due.scalar_subquery()
        if self.dialect == "postgresql":
            # Materialized, the choice is made once. As a plain IN subquery PostgreSQL
            # may run it again for each row it updates, and then (skipping the rows this
            # very statement just claimed) claim more than ``limit``.
            cte = due.with_for_update(of=_s, skip_locked=True).cte("due")
            chosen = select(cte.prefix_with("MATERIALIZED").c.id)
        rows = (
            await self.conn.execute(
                update(_s)
                .where(_s.c.id.in_(chosen), _s.c.status == "pending")
                .values(
                    status="running",
                    lease_owner=owner,
                    lease_until=lease_until,
                    attempts=_s.c.attempts + 1,
                    started_at=now,
                )
                .returning(*_s.c)
            )
        ).all()
        return sorted((_step(r) for r in rows), key=lambda r: (r.due_at, r.id))

    async def expire_leases(self, now: datetime) -> list[StepRunRecord]:
        rows = (
            await self.conn.execute(
                update(_s)
                .where(_s.c.status == "running", _s.c.lease_until < now)
                .values(
                    status="unknown",
                    finished_at=now,
                    error="the process stopped while sending; not re-sent automatically",
                )
                .returning(*_s.c)
            )
        ).all()
        return [_step(r) for r in rows]

    async def hold_later_parts(self, cohort_id: int, source: str, part: int, reason: str) -> int:
        result = await self.conn.execute(
            update(_s)
            .where(
                _s.c.cohort_id == cohort_id,
                _s.c.source == source,
                _s.c.kind == "talk_part",
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
                .where(_s.c.cohort_id == cohort_id, _s.c.source == source, _s.c.kind == "talk_part")
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
        await self.conn.execute(
            update(_s)
            .where(_s.c.id == run_id)
            .values(
                status=status,
                finished_at=at,
                outcome=dict(outcome) if outcome else None,
                error=error,
                lease_owner=None,
                lease_until=None,
            )
        )

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
        value = (
            await self.conn.execute(
                select(func.min(_s.c.due_at))
                .join(_c, _c.c.id == _s.c.cohort_id)
                .where(*_claimable())
            )
        ).scalar()
        return cast(datetime | None, value)

    async def open_count(self, cohort_id: int) -> int:
        value = (
            await self.conn.execute(
                select(func.count())
                .select_from(_s)
                .where(_s.c.cohort_id == cohort_id, _s.c.status.in_(("pending", "running")))
            )
        ).scalar_one()
        return int(value)

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

    async def for_cohort(self, cohort_id: int) -> list[Any]:
        return list(
            (
                await self.conn.execute(
                    select(_s).where(_s.c.cohort_id == cohort_id).order_by(_s.c.due_at, _s.c.id)
                )
            ).all()
        )


class SqlMembers(_Repo):
    async def ensure_user(
        self, telegram_id: int, name: str, language: str | None, at: datetime
    ) -> MemberRef:
        existing = await self.by_telegram(telegram_id)
        if existing:
            return existing
        for _attempt in range(5):
            try:
                async with self.conn.begin_nested():
                    row = (
                        await self.conn.execute(
                            _u.insert()
                            .values(
                                telegram_id=telegram_id,
                                display_name=name[:256],
                                language=language,
                                role=1,
                                ref_code=new_code(),
                                created_at=at,
                            )
                            .returning(_u.c.id)
                        )
                    ).one()
                return MemberRef(row.id, telegram_id, language)
            except IntegrityError:
                raced = await self.by_telegram(telegram_id)
                if raced:
                    return raced
        raise RuntimeError("could not allocate a unique ref code")

    async def add_users(
        self, rows: Sequence[tuple[int, str, str | None]], at: datetime
    ) -> list[MemberRef]:
        """Bulk-create users that are known not to exist yet (simulation, imports)."""
        values = [
            {
                "telegram_id": tg,
                "display_name": name,
                "language": lang,
                "role": 1,
                "ref_code": new_code(10),
                "created_at": at,
            }
            for tg, name, lang in rows
        ]
        await self.conn.execute(_u.insert(), values)
        found = (
            await self.conn.execute(
                select(_u.c.id, _u.c.telegram_id, _LANGUAGE).where(
                    _u.c.telegram_id.in_([r[0] for r in rows])
                )
            )
        ).all()
        by_tg = {r.telegram_id: MemberRef(r.id, r.telegram_id, r.language) for r in found}
        return [by_tg[r[0]] for r in rows]

    async def resolve_many(
        self, refs: Sequence[str], telegram_ids: Sequence[int]
    ) -> tuple[dict[str, MemberRef], dict[int, MemberRef]]:
        """Members by personal ref code and by Telegram id: two queries for a batch."""
        by_ref: dict[str, MemberRef] = {}
        by_tg: dict[int, MemberRef] = {}
        if refs:
            rows = await self.conn.execute(
                select(_u.c.id, _u.c.telegram_id, _LANGUAGE, _u.c.ref_code).where(
                    _one_of(self.dialect, _u.c.ref_code, "refs", sorted(set(refs)))
                )
            )
            by_ref = {r.ref_code: MemberRef(r.id, r.telegram_id, r.language) for r in rows}
        if telegram_ids:
            rows = await self.conn.execute(
                select(_u.c.id, _u.c.telegram_id, _LANGUAGE).where(
                    _one_of(self.dialect, _u.c.telegram_id, "tgs", sorted(set(telegram_ids)))
                )
            )
            by_tg = {r.telegram_id: MemberRef(r.id, r.telegram_id, r.language) for r in rows}
        return by_ref, by_tg

    async def current_cohorts(self, user_ids: Sequence[int]) -> dict[int, int]:
        """``current_cohort`` for many members: user id -> cohort id (absent: none)."""
        if not user_ids:
            return {}
        rows = await self.conn.execute(
            select(_m.c.user_id, _m.c.cohort_id)
            .join(_c, _c.c.id == _m.c.cohort_id)
            .where(
                _one_of(self.dialect, _m.c.user_id, "users", sorted(set(user_ids))),
                _m.c.admitted_at.is_not(None),
                _c.c.status.in_(("running", "paused")),
            )
            .order_by(_m.c.admitted_at, _m.c.id)
        )
        return {r.user_id: r.cohort_id for r in rows}  # the latest admission wins

    async def by_ref(self, ref_code: str) -> MemberRef | None:
        row = (
            await self.conn.execute(
                select(_u.c.id, _u.c.telegram_id, _LANGUAGE).where(_u.c.ref_code == ref_code)
            )
        ).first()
        return MemberRef(row.id, row.telegram_id, row.language) if row else None

    async def ref_code(self, user_id: int) -> str:
        return str(
            (await self.conn.execute(select(_u.c.ref_code).where(_u.c.id == user_id))).scalar_one()
        )

    async def by_telegram(self, telegram_id: int) -> MemberRef | None:
        statement = _prepared(
            "by_telegram",
            self.dialect,
            lambda: select(_u.c.id, _u.c.telegram_id, _LANGUAGE).where(
                _u.c.telegram_id == bindparam("tg")
            ),
        )
        row = (await self.conn.execute(statement, {"tg": telegram_id})).first()
        return MemberRef(row.id, row.telegram_id, row.language) if row else None

    async def join(
        self,
        cohort_id: int,
        members: Sequence[tuple[int, int | None]],
        capacity: int,
        at: datetime,
    ) -> dict[int, str]:
        ids = [user_id for user_id, _ in members]
        known = {
            r.user_id: r.left_at
            for r in (
                await self.conn.execute(
                    select(_m.c.user_id, _m.c.left_at).where(
                        _m.c.cohort_id == cohort_id, _m.c.user_id.in_(ids)
                    )
                )
            ).all()
        }
        outcome: dict[int, str] = {}
        rejoined = [uid for uid, left_at in known.items() if left_at is not None]
        if rejoined:
            await self.conn.execute(
                update(_m)
                .where(_m.c.cohort_id == cohort_id, _m.c.user_id.in_(rejoined))
                .values(left_at=None)
            )
        outcome.update({uid: "rejoined" if uid in rejoined else "member" for uid in known})
        fresh = [(uid, inviter) for uid, inviter in dict(members).items() if uid not in known]
        if self.dialect == "postgresql" and fresh:
            # Seats are counted, then taken: hold the cohort row so two batches of joins
            # cannot both see the same free seats.
            await self.conn.execute(select(_c.c.id).where(_c.c.id == cohort_id).with_for_update())
        room = max(0, capacity - await self.count(cohort_id))
        admitted, refused = fresh[:room], fresh[room:]
        if admitted:
            result = await self.conn.execute(
                insert_ignore(self.dialect, _m, "cohort_id", "user_id"),
                [
                    {
                        "cohort_id": cohort_id,
                        "user_id": uid,
                        "inviter_id": inviter,
                        "stage": int(Stage.JOINED),
                        "joined_at": at,
                    }
                    for uid, inviter in admitted
                ],
            )
            del result
        outcome.update({uid: "joined" for uid, _ in admitted})
        outcome.update({uid: "full" for uid, _ in refused})
        return outcome

    async def leave(self, cohort_id: int, user_id: int, at: datetime) -> None:
        await self.conn.execute(
            update(_m)
            .where(_m.c.cohort_id == cohort_id, _m.c.user_id == user_id, _m.c.left_at.is_(None))
            .values(left_at=at)
        )

    async def count(self, cohort_id: int) -> int:
        value = (
            await self.conn.execute(
                select(func.count())
                .select_from(_m)
                .where(_m.c.cohort_id == cohort_id, _m.c.left_at.is_(None))
            )
        ).scalar_one()
        return int(value)

    async def stage(self, cohort_id: int, user_id: int) -> Stage | None:
        statement = _prepared(
            "stage",
            self.dialect,
            lambda: select(_m.c.stage).where(
                _m.c.cohort_id == bindparam("cohort_id"), _m.c.user_id == bindparam("user_id")
            ),
        )
        value = (
            await self.conn.execute(statement, {"cohort_id": cohort_id, "user_id": user_id})
        ).scalar()
        return Stage(value) if value is not None else None

    def _advance_statement(self, stage: Stage) -> Any:
        column = _STAGE_COLUMN[stage]
        return _prepared(
            f"advance:{column}",
            self.dialect,
            lambda: (
                update(_m)
                .where(
                    _m.c.cohort_id == bindparam("b_cohort"),
                    _one_of(self.dialect, _m.c.user_id, "b_users"),
                    _m.c[column].is_(None),
                )
                .values(
                    {
                        column: bindparam("b_at"),
                        "stage": _greatest(self.dialect, _m.c.stage, bindparam("b_stage")),
                    }
                )
            ),
        )

    async def advance(self, cohort_id: int, user_id: int, stage: Stage, at: datetime) -> bool:
        return await self.advance_many(cohort_id, [user_id], stage, at) == 1

    async def advance_many(
        self, cohort_id: int, user_ids: Sequence[int], stage: Stage, at: datetime
    ) -> int:
        if not user_ids:
            return 0
        result = await self.conn.execute(
            self._advance_statement(stage),
            {"b_cohort": cohort_id, "b_users": list(user_ids), "b_at": at, "b_stage": int(stage)},
        )
        return int(result.rowcount)

    async def record_reply(
        self, cohort_id: int, user_id: int, at: datetime, opened_since: datetime
    ) -> bool:
        result = await self.conn.execute(
            _prepared("record_reply", self.dialect, self._record_reply),
            {"b_cohort": cohort_id, "b_user": user_id, "b_at": at, "b_since": opened_since},
        )
        return int(result.rowcount) == 1

    def _record_reply(self) -> Any:
        window_open = (
            select(_c.c.id)
            .where(
                _c.c.id == bindparam("b_cohort"),
                _c.c.pitch_opened_at >= bindparam("b_since"),
                _c.c.pitch_closed_at.is_(None),
            )
            .exists()
        )
        return (
            update(_m)
            .where(
                _m.c.cohort_id == bindparam("b_cohort"),
                _m.c.user_id == bindparam("b_user"),
                _m.c.replied_at.is_(None),
                window_open,
            )
            .values(
                replied_at=bindparam("b_at"),
                engaged_at=func.coalesce(_m.c.engaged_at, bindparam("b_at")),
                stage=_greatest(self.dialect, _m.c.stage, int(Stage.REPLIED)),
            )
        )

    @staticmethod
    def _add_activity_pg() -> Any:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        rows = (
            func.unnest(
                bindparam("b_users", type_=ARRAY(_a.c.user_id.type)),
                bindparam("b_counts", type_=ARRAY(_a.c.messages.type)),
            )
            .table_valued("user_id", "messages")
            .render_derived()
        )
        stmt = pg_insert(_a).from_select(
            ["cohort_id", "user_id", "day", "messages"],
            select(
                bindparam("b_cohort", type_=_a.c.cohort_id.type),
                rows.c.user_id,
                bindparam("b_day", type_=_a.c.day.type),
                rows.c.messages,
            ),
        )
        return stmt.on_conflict_do_update(
            index_elements=["cohort_id", "user_id", "day"],
            set_={"messages": _a.c.messages + stmt.excluded.messages},
        )

    async def add_activity(self, cohort_id: int, counts: Mapping[int, int], day: date) -> None:
        if not counts:
            return
        if self.dialect == "postgresql":
            # One statement whatever the number of members: the counts go in as two
            # arrays (a row per member would be a round trip each).
            await self.conn.execute(
                _prepared("add_activity", self.dialect, self._add_activity_pg),
                {
                    "b_cohort": cohort_id,
                    "b_day": day,
                    "b_users": list(counts),
                    "b_counts": list(counts.values()),
                },
            )
            return
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(_a)
        stmt = stmt.on_conflict_do_update(
            index_elements=["cohort_id", "user_id", "day"],
            set_={"messages": _a.c.messages + stmt.excluded.messages},
        )
        await self.conn.execute(
            stmt,
            [
                {"cohort_id": cohort_id, "user_id": uid, "day": day, "messages": n}
                for uid, n in counts.items()
            ],
        )

    async def responders_since(self, cohort_id: int, since: datetime | None) -> tuple[int, int]:
        replied = _m.c.replied_at.is_not(None)
        total = (
            await self.conn.execute(
                select(func.count()).select_from(_m).where(_m.c.cohort_id == cohort_id, replied)
            )
        ).scalar_one()
        if since is None:
            return int(total), int(total)
        new = (
            await self.conn.execute(
                select(func.count())
                .select_from(_m)
                .where(_m.c.cohort_id == cohort_id, _m.c.replied_at > since)
            )
        ).scalar_one()
        return int(new), int(total)

    async def current_cohort(self, user_id: int) -> int | None:
        statement = _prepared(
            "current_cohort",
            self.dialect,
            lambda: (
                select(_m.c.cohort_id)
                .join(_c, _c.c.id == _m.c.cohort_id)
                .where(
                    _m.c.user_id == bindparam("user_id"),
                    _m.c.admitted_at.is_not(None),
                    _c.c.status.in_(("running", "paused")),
                )
                .order_by(_m.c.admitted_at.desc())
                .limit(1)
            ),
        )
        value = (await self.conn.execute(statement, {"user_id": user_id})).scalar()
        return int(value) if value is not None else None

    async def name(self, user_id: int) -> str | None:
        value = (
            await self.conn.execute(select(_u.c.display_name).where(_u.c.id == user_id))
        ).scalar()
        return str(value) if value is not None else None

    async def set_role_at_least(self, user_id: int, role: int) -> None:
        await self.conn.execute(
            update(_u).where(_u.c.id == user_id, _u.c.role < role).values(role=role)
        )

    async def ref(self, user_id: int) -> MemberRef | None:
        row = (
            await self.conn.execute(
                select(_u.c.id, _u.c.telegram_id, _LANGUAGE).where(_u.c.id == user_id)
            )
        ).first()
        return MemberRef(row.id, row.telegram_id, row.language) if row else None

    async def latest_cohort(self, user_id: int) -> int | None:
        value = (
            await self.conn.execute(
                select(_m.c.cohort_id)
                .join(_c, _c.c.id == _m.c.cohort_id)
                .where(_m.c.user_id == user_id, _c.c.status.in_(("running", "paused")))
                .order_by(_m.c.joined_at.desc(), _m.c.id.desc())
                .limit(1)
            )
        ).scalar()
        return int(value) if value is not None else None

    async def role(self, user_id: int) -> int:
        value = (await self.conn.execute(select(_u.c.role).where(_u.c.id == user_id))).scalar()
        return int(value) if value is not None else 0

    async def grant(self, user_id: int, role: int, region_id: int | None) -> None:
        await self.set_role_at_least(user_id, role)
        if region_id is not None:
            await self.conn.execute(
                update(_u).where(_u.c.id == user_id).values(region_id=region_id)
            )

    async def region(self, user_id: int) -> int | None:
        value = (await self.conn.execute(select(_u.c.region_id).where(_u.c.id == user_id))).scalar()
        return int(value) if value is not None else None

    async def set_locale(self, user_id: int, locale: str) -> None:
        await self.conn.execute(update(_u).where(_u.c.id == user_id).values(chosen_locale=locale))

    async def set_reachable(self, telegram_id: int, reachable: bool, at: datetime) -> None:
        await self.conn.execute(
            update(_u)
            .where(_u.c.telegram_id == telegram_id)
            .values(unreachable_at=None if reachable else at)
        )

    async def stage_counts(self, cohort_id: int) -> dict[Stage, int]:
        rows = (
            await self.conn.execute(
                select(_m.c.stage, func.count())
                .where(_m.c.cohort_id == cohort_id)
                .group_by(_m.c.stage)
            )
        ).all()
        at_stage = {int(r[0]): int(r[1]) for r in rows}
        return {stage: sum(n for s, n in at_stage.items() if s >= stage) for stage in Stage}


class SqlEnvelopes(_Repo):
    async def open(
        self,
        cohort_id: int,
        step_key: str,
        currency: str,
        amounts: Sequence[int],
        opened_at: datetime,
        expires_at: datetime,
    ) -> EnvelopeRecord:
        existing = await self.by_step(cohort_id, step_key)
        if existing:
            return existing
        row = (
            await self.conn.execute(
                _e.insert()
                .values(
                    cohort_id=cohort_id,
                    step_key=step_key,
                    currency=currency,
                    total_minor=sum(amounts),
                    shares=len(amounts),
                    claimed=0,
                    claimed_minor=0,
                    opened_at=opened_at,
                    expires_at=expires_at,
                )
                .returning(*_e.c)
            )
        ).one()
        await self.conn.execute(
            _es.insert(),
            [{"envelope_id": row.id, "idx": i, "amount_minor": a} for i, a in enumerate(amounts)],
        )
        return _envelope(row)

    async def set_message(self, envelope_id: int, chat_id: int, message_id: int) -> None:
        await self.conn.execute(
            update(_e).where(_e.c.id == envelope_id).values(chat_id=chat_id, message_id=message_id)
        )

    async def get(self, envelope_id: int) -> EnvelopeRecord | None:
        row = (await self.conn.execute(select(_e).where(_e.c.id == envelope_id))).first()
        return _envelope(row) if row else None

    async def by_step(self, cohort_id: int, step_key: str) -> EnvelopeRecord | None:
        row = (
            await self.conn.execute(
                select(_e).where(_e.c.cohort_id == cohort_id, _e.c.step_key == step_key)
            )
        ).first()
        return _envelope(row) if row else None

    def _claim_one(self) -> Any:
        stage = (
            select(_m.c.stage)
            .where(_m.c.cohort_id == _e.c.cohort_id, _m.c.user_id == bindparam("user"))
            .scalar_subquery()
        )
        before = (
            select(_es.c.amount_minor)
            .where(_es.c.envelope_id == _e.c.id, _es.c.user_id == bindparam("user"))
            .scalar_subquery()
        )
        return select(*_e.c, stage.label("stage"), before.label("before")).where(
            _e.c.id == bindparam("envelope")
        )

    async def _stages_and_shares(
        self, cohort_id: int, envelope_id: int, users: list[int]
    ) -> tuple[dict[int, int], dict[int, int]]:
        """Members' stages in the cohort, and the shares they already hold."""
        stages = {
            r.user_id: int(r.stage)
            for r in await self.conn.execute(
                _prepared(
                    "claim_stages",
                    self.dialect,
                    lambda: select(_m.c.user_id, _m.c.stage).where(
                        _m.c.cohort_id == bindparam("cohort"),
                        _one_of(self.dialect, _m.c.user_id, "users"),
                    ),
                ),
                {"cohort": cohort_id, "users": users},
            )
        }
        held = {
            r.user_id: int(r.amount_minor)
            for r in await self.conn.execute(
                _prepared(
                    "claim_held",
                    self.dialect,
                    lambda: select(_es.c.user_id, _es.c.amount_minor).where(
                        _es.c.envelope_id == bindparam("envelope"),
                        _one_of(self.dialect, _es.c.user_id, "users"),
                    ),
                ),
                {"envelope": envelope_id, "users": users},
            )
        }
        return stages, held

    def _claim_take_one(self) -> Any:
        free = (
            select(_es.c.id)
            .where(_es.c.envelope_id == bindparam("b_envelope"), _es.c.user_id.is_(None))
            .order_by(_es.c.idx)
            .limit(1)
            .scalar_subquery()
        )
        return (
            update(_es)
            .where(_es.c.id == free, _es.c.user_id.is_(None))
            .values(user_id=bindparam("b_user"), claimed_at=bindparam("b_at"))
            .returning(_es.c.amount_minor)
        )

    def _claim_count(self) -> Any:
        return (
            update(_e)
            .where(_e.c.id == bindparam("b_envelope"))
            .values(
                claimed=_e.c.claimed + bindparam("b_n"),
                claimed_minor=_e.c.claimed_minor + bindparam("b_amount"),
            )
        )

    async def claim(self, envelope_id: int, user_id: int, at: datetime) -> ShareClaim:
        return (await self.claim_many(envelope_id, [user_id], at))[user_id]

    async def claim_many(
        self, envelope_id: int, user_ids: Sequence[int], at: datetime
    ) -> dict[int, ShareClaim]:
        """Claims for a batch of taps, in tap order: a few statements for the whole batch.

        On PostgreSQL the envelope row is locked first, so batches (from any process)
        take turns on it and a close waits for them; on SQLite units of work take turns
        anyway. ``(envelope, user)`` is unique besides, so nobody ever holds two shares.
        """
        users = list(dict.fromkeys(user_ids))
        if len(users) == 1 and self.dialect == "sqlite":
            # A lone tap: envelope, stage and earlier share in one read. (PostgreSQL
            # locks the envelope first and reads the rest after it holds the lock, so
            # the read sees whatever the tap before it wrote.)
            env = (
                await self.conn.execute(
                    _prepared("claim_one", self.dialect, self._claim_one),
                    {"envelope": envelope_id, "user": users[0]},
                )
            ).first()
            if env is None:
                return {users[0]: ShareClaim("closed")}
            stages = {users[0]: int(env.stage)} if env.stage is not None else {}
            held = {users[0]: int(env.before)} if env.before is not None else {}
        else:
            envelope = select(_e).where(_e.c.id == envelope_id)
            if self.dialect == "postgresql":
                envelope = envelope.with_for_update()
            env = (await self.conn.execute(envelope)).first()
            if env is None:
                return {u: ShareClaim("closed") for u in users}
            stages, held = await self._stages_and_shares(env.cohort_id, envelope_id, users)
        shut = env.closed_at is not None or at >= env.expires_at

        def claim(outcome: Any, user_id: int, amount: int = 0, last: bool = False) -> ShareClaim:
            return ShareClaim(
                outcome,
                amount,
                last_share=last,
                cohort_id=env.cohort_id,
                step_key=env.step_key,
                currency=env.currency,
                stage=stages.get(user_id),
            )

        result: dict[int, ShareClaim] = {}
        takers: list[int] = []
        for user_id in users:
            if user_id not in stages:
                result[user_id] = claim("not_member", user_id)
            elif user_id in held:
                result[user_id] = claim("already", user_id, held[user_id])
            elif shut:
                result[user_id] = claim("closed", user_id)
            else:
                takers.append(user_id)
        room = max(0, env.shares - env.claimed)
        winners = takers[:room]
        result.update({u: claim("empty", u) for u in takers[room:]})
        if not winners:
            return result
        if len(winners) == 1:
            amount = (
                await self.conn.execute(
                    _prepared("claim_take_one", self.dialect, self._claim_take_one),
                    {"b_envelope": envelope_id, "b_user": winners[0], "b_at": at},
                )
            ).scalar_one()
            await self.conn.execute(
                _prepared("claim_count", self.dialect, self._claim_count),
                {"b_envelope": envelope_id, "b_n": 1, "b_amount": amount},
            )
            last = env.claimed + 1 == env.shares
            result[winners[0]] = claim("claimed", winners[0], int(amount), last)
            return result
        free = (
            await self.conn.execute(
                _prepared(
                    "claim_free",
                    self.dialect,
                    lambda: (
                        select(_es.c.id, _es.c.amount_minor)
                        .where(_es.c.envelope_id == bindparam("envelope"), _es.c.user_id.is_(None))
                        .order_by(_es.c.idx)
                        .limit(bindparam("n"))
                    ),
                ),
                {"envelope": envelope_id, "n": len(winners)},
            )
        ).all()
        await self.conn.execute(
            _prepared(
                "claim_take",
                self.dialect,
                lambda: (
                    update(_es)
                    .where(_es.c.id == bindparam("b_id"), _es.c.user_id.is_(None))
                    .values(user_id=bindparam("b_user"), claimed_at=bindparam("b_at"))
                ),
            ),
            [
                {"b_id": share.id, "b_user": user_id, "b_at": at}
                for share, user_id in zip(free, winners, strict=False)
            ],
        )
        taken = sum(int(share.amount_minor) for share in free)
        await self.conn.execute(
            _prepared("claim_count", self.dialect, self._claim_count),
            {"b_envelope": envelope_id, "b_n": len(free), "b_amount": taken},
        )
        for n, (share, user_id) in enumerate(zip(free, winners, strict=False), start=1):
            last = env.claimed + n == env.shares
            result[user_id] = claim("claimed", user_id, int(share.amount_minor), last)
        return result

    async def close(self, envelope_id: int, at: datetime) -> EnvelopeRecord | None:
        row = (
            await self.conn.execute(
                update(_e)
                .where(_e.c.id == envelope_id, _e.c.closed_at.is_(None))
                .values(closed_at=at)
                .returning(*_e.c)
            )
        ).first()
        return _envelope(row) if row else None

    async def luckiest(self, envelope_id: int) -> tuple[int, int] | None:
        row = (
            await self.conn.execute(
                select(_es.c.user_id, _es.c.amount_minor)
                .where(_es.c.envelope_id == envelope_id, _es.c.user_id.is_not(None))
                .order_by(_es.c.amount_minor.desc(), _es.c.claimed_at, _es.c.idx)
                .limit(1)
            )
        ).first()
        return (int(row.user_id), int(row.amount_minor)) if row else None

    async def full_and_open(self, limit: int) -> list[int]:
        # No index covers "open": the envelopes table holds a few hundred rows a month
        # and a partial index on closed_at IS NULL would make this a lookup (a migration).
        rows = await self.conn.execute(
            select(_e.c.id)
            .where(_e.c.closed_at.is_(None), _e.c.claimed >= _e.c.shares)
            .order_by(_e.c.id)
            .limit(limit)
        )
        return [int(r) for r in rows.scalars()]


def _progress(raw: Mapping[str, Any] | None) -> dict[int, int]:
    return {int(k): int(v) for k, v in (raw or {}).items()}


class SqlTasks(_Repo):
    async def add_unique_many(self, rows: Sequence[tuple[int, int, str]]) -> None:
        if rows:
            await self.conn.execute(
                insert_ignore(self.dialect, _tu, "progress_id", "leaf", "value"),
                [{"progress_id": p, "leaf": leaf, "value": v[:128]} for p, leaf, v in rows],
            )

    async def save(
        self,
        progress_id: int,
        progress: Mapping[int, int],
        completed_at: datetime | None,
        at: datetime,
    ) -> None:
        await self.save_many([(progress_id, progress, completed_at, None)], at)

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
            _prepared("progress_save", self.dialect, self._save_statement),
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
            _prepared(
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


class SqlEvents(_Repo):
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
        statement = _prepared(
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


class SqlLedger(_Repo):
    async def credit(
        self,
        key: str,
        user_id: int,
        cohort_id: int | None,
        kind: str,
        ref: str,
        amount_minor: int,
        currency: str,
        at: datetime,
    ) -> bool:
        statement = _prepared(
            "ledger_credit",
            self.dialect,
            lambda: insert_ignore(self.dialect, _l, "idempotency_key"),
        )
        result = await self.conn.execute(
            statement,
            {
                "idempotency_key": key,
                "user_id": user_id,
                "cohort_id": cohort_id,
                "kind": kind,
                "ref": ref,
                "amount_minor": amount_minor,
                "currency": currency,
                "created_at": at,
                "paid_out": False,
            },
        )
        return result.rowcount == 1

    async def credit_many(self, entries: Sequence[LedgerCredit], at: datetime) -> int:
        if not entries:
            return 0
        statement = _prepared(
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


def _link(row: Any) -> InviteLinkRecord:
    return InviteLinkRecord(row.link, row.chat_id, row.cohort_id, row.owner_id, row.kind)


class SqlLinks(_Repo):
    async def add(self, record: InviteLinkRecord, at: datetime) -> None:
        await self.conn.execute(
            insert_ignore(self.dialect, _il, "link"),
            [
                {
                    "link": record.link,
                    "chat_id": record.chat_id,
                    "cohort_id": record.cohort_id,
                    "owner_id": record.owner_id,
                    "kind": record.kind,
                    "created_at": at,
                }
            ],
        )

    async def get(self, link: str) -> InviteLinkRecord | None:
        row = (await self.conn.execute(select(_il).where(_il.c.link == link))).first()
        return _link(row) if row else None

    async def find(
        self, cohort_id: int, kind: str, owner_id: int | None = None
    ) -> InviteLinkRecord | None:
        statement = select(_il).where(_il.c.cohort_id == cohort_id, _il.c.kind == kind)
        if owner_id is not None:
            statement = statement.where(_il.c.owner_id == owner_id)
        row = (await self.conn.execute(statement.order_by(_il.c.id.desc()).limit(1))).first()
        return _link(row) if row else None

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        await self.conn.execute(
            update(_il).where(_il.c.chat_id == old_chat_id).values(chat_id=new_chat_id)
        )


def _region(row: Any) -> RegionRecord:
    return RegionRecord(row.id, row.code, row.name, row.timezone, row.weekly_target)


class SqlRegions(_Repo):
    async def add(
        self, code: str, name: str, timezone: str, weekly_target: int, at: datetime
    ) -> RegionRecord:
        try:
            async with self.conn.begin_nested():
                row = (
                    await self.conn.execute(
                        _r.insert()
                        .values(
                            code=code,
                            name=name,
                            timezone=timezone,
                            weekly_target=weekly_target,
                            created_at=at,
                        )
                        .returning(*_r.c)
                    )
                ).one()
        except IntegrityError:
            raise AlreadyExists(f"region {code} exists") from None
        return _region(row)

    async def by_code(self, code: str) -> RegionRecord | None:
        row = (await self.conn.execute(select(_r).where(_r.c.code == code))).first()
        return _region(row) if row else None

    async def get(self, region_id: int) -> RegionRecord | None:
        row = (await self.conn.execute(select(_r).where(_r.c.id == region_id))).first()
        return _region(row) if row else None

    async def all(self) -> list[RegionRecord]:
        rows = (await self.conn.execute(select(_r).order_by(_r.c.code))).all()
        return [_region(r) for r in rows]


class SqlTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.cohorts = SqlCohorts(conn)
        self.steps = SqlSteps(conn)
        self.members = SqlMembers(conn)
        self.envelopes = SqlEnvelopes(conn)
        self.tasks = SqlTasks(conn)
        self.events = SqlEvents(conn)
        self.ledger = SqlLedger(conn)
        self.links = SqlLinks(conn)
        self.regions = SqlRegions(conn)
        self.updates = SqlUpdates(conn)
        self._committed = False

    async def commit(self) -> None:
        await self.conn.commit()
        self._committed = True


class SqlStore:
    """The :class:`funnels.ports.Store` over an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer, and a deferred transaction that reads and then writes
        # can lose an update to another one; in-process, units of work on SQLite take
        # turns. PostgreSQL relies on row locks (FOR UPDATE / SKIP LOCKED) instead.
        self._turns = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        if self._turns is None:
            async with self._connection() as tx:
                yield tx
            return
        async with self._turns, self._connection() as tx:
            yield tx

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[SqlTransaction]:
        async with self.engine.connect() as conn:
            tx = SqlTransaction(conn)
            try:
                yield tx
            finally:
                if not tx._committed and conn.in_transaction():
                    await conn.rollback()
