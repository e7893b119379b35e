"""Daily reminders in SQL: who in a cohort's task stage is still to be reminded today,
and the claim that makes a reminder go out once per member and local day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, update

from funnels.kernel.records import MemberRef, ReminderCandidate
from storage.db import insert_ignore
from storage.sql import Repo, one_of
from storage.tables import (
    cohort_members as _m,
    inbound_events as _ev,
    member_reminders as _r,
    task_progress as _tp,
    users as _u,
)

# What a member reads in: the locale they chose with /lang, else their app's language.
_LANGUAGE = func.coalesce(_u.c.chosen_locale, _u.c.language).label("language")


def as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    moment: datetime = (
        datetime.fromisoformat(value) if isinstance(value, str) else value
    )  # SQLite may hand back an aggregate of datetimes as text
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class SqlReminders(Repo):
    async def candidates(self, cohort_id: int, day: date, limit: int) -> list[ReminderCandidate]:
        last_progress = (
            select(func.max(_tp.c.updated_at))
            .where(_tp.c.cohort_id == _m.c.cohort_id, _tp.c.user_id == _m.c.user_id)
            .scalar_subquery()
        )
        last_event = (
            select(func.max(_ev.c.occurred_at))
            .where(_ev.c.cohort_id == _m.c.cohort_id, _ev.c.user_id == _m.c.user_id)
            .scalar_subquery()
        )
        reminded = select(_r.c.user_id).where(_r.c.user_id == _m.c.user_id, _r.c.day == day)
        rows = (
            await self.conn.execute(
                select(
                    _m.c.user_id,
                    _u.c.telegram_id,
                    _LANGUAGE,
                    _m.c.admitted_at,
                    last_progress.label("last_progress"),
                    last_event.label("last_event"),
                )
                .join(_u, _u.c.id == _m.c.user_id)
                .where(
                    _m.c.cohort_id == cohort_id,
                    _m.c.admitted_at.is_not(None),
                    _m.c.left_at.is_(None),
                    _u.c.telegram_id.is_not(None),
                    _u.c.unreachable_at.is_(None),
                    ~reminded.exists(),
                )
                .order_by(_m.c.user_id)
                .limit(limit)
            )
        ).all()
        completed = await self._completed(cohort_id, [r.user_id for r in rows])
        found = []
        for r in rows:
            times = [as_utc(t) for t in (r.admitted_at, r.last_progress, r.last_event)]
            found.append(
                ReminderCandidate(
                    MemberRef(r.user_id, r.telegram_id, r.language),
                    max(t for t in times if t is not None),
                    frozenset(completed.get(r.user_id, ())),
                )
            )
        return found

    async def _completed(self, cohort_id: int, user_ids: Sequence[int]) -> dict[int, set[str]]:
        if not user_ids:
            return {}
        rows = await self.conn.execute(
            select(_tp.c.user_id, _tp.c.task_id).where(
                _tp.c.cohort_id == cohort_id,
                _tp.c.completed_at.is_not(None),
                one_of(self.dialect, _tp.c.user_id, "users", list(user_ids)),
            )
        )
        done: dict[int, set[str]] = {}
        for r in rows:
            done.setdefault(r.user_id, set()).add(r.task_id)
        return done

    async def claim_many(
        self, claims: Sequence[tuple[int, str]], day: date, cohort_id: int, at: datetime
    ) -> set[int]:
        if not claims:
            return set()
        statement = insert_ignore(self.dialect, _r, "user_id", "day").returning(_r.c.user_id)
        rows = await self.conn.execute(
            statement,
            [
                {
                    "user_id": user_id,
                    "day": day,
                    "cohort_id": cohort_id,
                    "segment": segment,
                    "claimed_at": at,
                }
                for user_id, segment in claims
            ],
        )
        return {int(r.user_id) for r in rows}

    async def delivered(self, user_ids: Sequence[int], day: date, delivered: bool) -> None:
        if user_ids:
            await self.conn.execute(
                update(_r)
                .where(_r.c.day == day, _r.c.user_id.in_(list(user_ids)))
                .values(delivered=delivered)
            )
