"""Membership of cohorts in SQL: joins, stages, replies, activity."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, bindparam, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from funnels.kernel.records import Arrival, Seat
from funnels.kernel.rollups import FunnelCounts, funnel_moves
from funnels.kernel.stages import Stage
from storage.db import insert_ignore
from storage.rollups import STAGE_COLUMNS, TIME_COLUMNS, RollupChanges, cohort_zone, stage_times
from storage.sql import Repo, greatest, one_of, prepared, unnested
from storage.tables import (
    cohort_members as _m,
    cohorts as _c,
    member_activity as _a,
    users as _u,
)

# What a member reads in: the locale they chose with /lang, else their app's language.
_LANGUAGE = func.coalesce(_u.c.chosen_locale, _u.c.language).label("language")


class SqlMembers(Repo):
    """Members of cohorts. Every change of a member's stages or messages is also noted in
    the transaction's rollup changes (``storage.rollups``)."""

    def __init__(self, conn: AsyncConnection, rollups: RollupChanges | None = None) -> None:
        super().__init__(conn)
        self.rollups = rollups if rollups is not None else RollupChanges()

    async def current_cohorts(self, user_ids: Sequence[int]) -> dict[int, int]:
        """``current_cohort`` for many members: user id -> cohort id (absent: none)."""
        if not user_ids:
            return {}
        rows = await self.conn.execute(
            select(_m.c.user_id, _m.c.cohort_id)
            .join(_c, _c.c.id == _m.c.cohort_id)
            .where(
                one_of(self.dialect, _m.c.user_id, "users", sorted(set(user_ids))),
                _m.c.admitted_at.is_not(None),
                _c.c.status.in_(("running", "paused")),
            )
            .order_by(_m.c.admitted_at, _m.c.id)
        )
        return {r.user_id: r.cohort_id for r in rows}  # the latest admission wins

    async def join(
        self,
        cohort_id: int,
        arrivals: Sequence[Arrival],
        capacity: int,
        at: datetime,
    ) -> dict[int, Seat]:
        ids = [a.user_id for a in arrivals]
        zone: ZoneInfo | None = None
        if self.dialect == "postgresql":
            # Seats are counted, then taken: hold the cohort row first, so two batches of
            # joins cannot both see the same free seats or both seat the same member.
            name = (
                await self.conn.execute(
                    select(_c.c.timezone).where(_c.c.id == cohort_id).with_for_update()
                )
            ).scalar_one()
            zone = ZoneInfo(name)
        # Statements built once (storage.sql.prepared): a join comes per chat_member update.
        seated = prepared(
            "members_seated",
            self.dialect,
            lambda: select(_m.c.user_id, _m.c.left_at).where(
                _m.c.cohort_id == bindparam("cohort_id"),
                one_of(self.dialect, _m.c.user_id, "user_ids"),
            ),
        )
        rows = await self.conn.execute(seated, {"cohort_id": cohort_id, "user_ids": ids})
        known = {r.user_id: r.left_at for r in rows.all()}
        outcome: dict[int, Seat] = {}
        rejoined = [uid for uid, left_at in known.items() if left_at is not None]
        if rejoined:
            await self.conn.execute(
                update(_m)
                .where(_m.c.cohort_id == cohort_id, _m.c.user_id.in_(rejoined))
                .values(left_at=None)
            )
        outcome.update({uid: "rejoined" if uid in rejoined else "member" for uid in known})
        fresh = [(uid, inviter) for uid, inviter in dict(arrivals).items() if uid not in known]
        room = max(0, capacity - await self.count(cohort_id)) if fresh else 0
        admitted, refused = fresh[:room], fresh[room:]
        if admitted:
            await self.conn.execute(
                prepared(
                    "members_join",
                    self.dialect,
                    lambda: insert_ignore(self.dialect, _m, "cohort_id", "user_id"),
                ),
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
            zone = zone or await cohort_zone(self.conn, cohort_id)
            day = at.astimezone(zone).date()
            self.rollups.add_funnel(cohort_id, Counter({(day, Stage.JOINED): len(admitted)}))
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
        statement = prepared(
            "members_count",
            self.dialect,
            lambda: (
                select(func.count())
                .select_from(_m)
                .where(_m.c.cohort_id == bindparam("cohort_id"), _m.c.left_at.is_(None))
            ),
        )
        value = (await self.conn.execute(statement, {"cohort_id": cohort_id})).scalar_one()
        return int(value)

    async def stage(self, cohort_id: int, user_id: int) -> Stage | None:
        statement = prepared(
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

    async def advance(self, cohort_id: int, user_id: int, stage: Stage, at: datetime) -> bool:
        return await self.advance_many(cohort_id, [user_id], stage, at) == 1

    async def advance_many(
        self, cohort_id: int, user_ids: Sequence[int], stage: Stage, at: datetime
    ) -> int:
        if not user_ids:
            return 0
        params = {"b_cohort": cohort_id, "b_users": list(user_ids), "b_at": at}
        statement = prepared(f"advance:{stage.label}", self.dialect, lambda: self._advance(stage))
        rows = (await self.conn.execute(statement, params)).all()
        if not rows:
            return 0
        # Only the stage's own timestamp changed, and it was empty (the statement's
        # condition): the timestamps from before are those returned, less that one.
        if self.dialect == "postgresql":
            zone = ZoneInfo(rows[0].timezone)
        else:
            zone = await cohort_zone(self.conn, cohort_id)
        befores = [{**stage_times(r), stage: None} for r in rows]
        self._note(cohort_id, _Moved(befores, zone), lambda before: {stage: at})
        return len(rows)

    async def advance_each(self, stage: Stage, moves: Sequence[tuple[int, int, datetime]]) -> int:
        """:meth:`advance_many` for members each moving at their own time: (cohort, user,
        at). PostgreSQL: one statement for them all."""
        if not moves:
            return 0
        if self.dialect != "postgresql":  # statements run inline: one per member costs little
            return sum([await self.advance_many(c, [u], stage, at) for c, u, at in moves])
        statement = prepared(
            f"advance_each:{stage.label}", self.dialect, lambda: _advance_each_pg(stage)
        )
        params = {
            "b_cohorts": [c for c, _, _ in moves],
            "b_users": [u for _, u, _ in moves],
            "b_ats": [at for _, _, at in moves],
        }
        rows = (await self.conn.execute(statement, params)).all()
        for row in rows:
            # As in advance_many: only the stage's own timestamp changed, from empty.
            before = {**stage_times(row), stage: None}
            zone = ZoneInfo(row.timezone)
            moved = funnel_moves(before, {**before, stage: row.moved_at}, zone)
            self.rollups.add_funnel(row.cohort_id, moved)
        return len(rows)

    def _advance(self, stage: Stage) -> Any:
        """Set the stage's timestamp where it is empty (and raise the stage), returning
        the members' timestamps as they now are (and, on PostgreSQL, the cohort's time
        zone, read in the same statement)."""
        column = STAGE_COLUMNS[stage]
        statement = (
            update(_m)
            .where(
                _m.c.cohort_id == bindparam("b_cohort"),
                one_of(self.dialect, _m.c.user_id, "b_users"),
                _m.c[column].is_(None),
            )
            .values(
                {
                    column: bindparam("b_at"),
                    "stage": greatest(self.dialect, _m.c.stage, int(stage)),
                }
            )
        )
        if self.dialect == "postgresql":
            return statement.where(_c.c.id == _m.c.cohort_id).returning(
                *TIME_COLUMNS, _c.c.timezone
            )
        return statement.returning(*TIME_COLUMNS)

    async def record_reply(
        self, cohort_id: int, user_id: int, at: datetime, opened_since: datetime
    ) -> bool:

        def replying() -> _Change:
            # A reply counts while the pitch that opened at or after ``b_since`` is open.
            window_open = (
                select(_c.c.id)
                .where(
                    _c.c.id == bindparam("b_cohort"),
                    _c.c.pitch_opened_at >= bindparam("b_since"),
                    _c.c.pitch_closed_at.is_(None),
                )
                .exists()
            )
            where = [
                _m.c.cohort_id == bindparam("b_cohort"),
                one_of(self.dialect, _m.c.user_id, "b_users"),
                _m.c.replied_at.is_(None),
                window_open,
            ]
            values = {
                "replied_at": bindparam("b_at"),
                "engaged_at": func.coalesce(_m.c.engaged_at, bindparam("b_at")),
                "stage": greatest(self.dialect, _m.c.stage, int(Stage.REPLIED)),
            }
            return where, values

        params = {"b_cohort": cohort_id, "b_users": [user_id], "b_at": at, "b_since": opened_since}
        moved = await self._stamp("record_reply", replying, params)
        self._note(
            cohort_id,
            moved,
            lambda before: {Stage.REPLIED: at, Stage.ENGAGED: before[Stage.ENGAGED] or at},
        )
        return len(moved.before) == 1

    async def _stamp(
        self, name: str, change: Callable[[], _Change], params: dict[str, Any]
    ) -> _Moved:
        """Set the change's values on the members its conditions choose (the statements
        are built once, by ``change``); returns each one's stage
        timestamps from before, and the cohort's time zone.

        PostgreSQL: one ``UPDATE … FROM (SELECT … FOR UPDATE) … RETURNING``, the locked
        rows' old timestamps coming back with the update. SQLite, whose RETURNING cannot
        name the FROM rows and whose units of work take turns: a read, then the update.
        """
        if self.dialect == "postgresql":
            statement = prepared(name, self.dialect, lambda: _stamp_pg(*change()))
            rows = (await self.conn.execute(statement, params)).all()
            if not rows:
                return _Moved([], None)
            return _Moved([stage_times(r) for r in rows], ZoneInfo(rows[0].timezone))
        read = prepared(
            f"{name}:before", self.dialect, lambda: select(*TIME_COLUMNS).where(*change()[0])
        )
        before = (await self.conn.execute(read, params)).all()
        if not before:
            return _Moved([], None)
        where, values = change()
        write = prepared(name, self.dialect, lambda: update(_m).where(*where).values(values))
        await self.conn.execute(write, params)
        zone = await cohort_zone(self.conn, params["b_cohort"])
        return _Moved([stage_times(r) for r in before], zone)

    def _note(
        self,
        cohort_id: int,
        moved: _Moved,
        stamps: Callable[[Mapping[Stage, datetime | None]], Mapping[Stage, datetime]],
    ) -> None:
        """Note in the rollups where the moved members now enter the funnel."""
        if moved.zone is None:
            return
        moves: FunnelCounts = Counter()
        for before in moved.before:
            moves.update(funnel_moves(before, {**before, **stamps(before)}, moved.zone))
        self.rollups.add_funnel(cohort_id, moves)

    @staticmethod
    def _add_activity_pg() -> Any:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        rows = unnested(
            ("user_id", "b_users", _a.c.user_id), ("messages", "b_counts", _a.c.messages)
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
        ).returning(literal_column("xmax = 0", Boolean))

    async def among(self, cohort_id: int, user_ids: Sequence[int]) -> set[int]:
        if not user_ids:
            return set()
        statement = prepared(
            "members_among",
            self.dialect,
            lambda: select(_m.c.user_id).where(
                _m.c.cohort_id == bindparam("cohort_id"), one_of(self.dialect, _m.c.user_id, "ids")
            ),
        )
        rows = await self.conn.execute(statement, {"cohort_id": cohort_id, "ids": list(user_ids)})
        return set(rows.scalars())

    async def add_activity(self, cohort_id: int, counts: Mapping[int, int], day: date) -> None:
        if not counts:
            return
        if self.dialect == "postgresql":
            # One statement whatever the number of members: the counts go in as two
            # arrays (a row per member would be a round trip each). A row it inserts
            # (``xmax = 0``) is a member's first message of the day.
            rows = await self.conn.execute(
                prepared("add_activity", self.dialect, self._add_activity_pg),
                {
                    "b_cohort": cohort_id,
                    "b_day": day,
                    "b_users": list(counts),
                    "b_counts": list(counts.values()),
                },
            )
            writers = sum(1 for (fresh,) in rows if fresh)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            wrote = select(func.count()).where(
                _a.c.cohort_id == cohort_id, _a.c.day == day, _a.c.user_id.in_(list(counts))
            )
            writers = len(counts) - int((await self.conn.execute(wrote)).scalar_one())
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
        self.rollups.add_activity(cohort_id, day, sum(counts.values()), writers)

    async def responders(self, cohort_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        stamp = _c.c.admissions_noted_at
        new = or_(stamp.is_(None), _m.c.replied_at > stamp)
        rows = await self.conn.execute(
            select(
                _m.c.cohort_id,
                func.count().filter(new).label("new"),
                func.count().label("total"),
            )
            .join(_c, _c.c.id == _m.c.cohort_id)
            .where(_m.c.cohort_id.in_(cohort_ids), _m.c.replied_at.is_not(None))
            .group_by(_m.c.cohort_id)
        )
        return {int(r.cohort_id): (int(r.new), int(r.total)) for r in rows}

    async def current_cohort(self, user_id: int) -> int | None:
        statement = prepared(
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


_Change = tuple[list[Any], dict[str, Any]]
"""A stage change as SQL: the members it applies to (conditions) and what it sets."""


@dataclass(frozen=True, slots=True)
class _Moved:
    before: list[dict[Stage, Any]]
    """The stage timestamps of each member who moved, from before the move."""
    zone: ZoneInfo | None
    """The cohort's time zone (None when no one moved)."""


def _advance_each_pg(stage: Stage) -> Any:
    """``UPDATE cohort_members SET <stage>_at = v.at … FROM unnest(cohorts, users, ats)``
    where the stage's timestamp is empty, returning the timestamps as they now are, the
    time of the move and the cohort's time zone."""
    column = STAGE_COLUMNS[stage]
    wanted = unnested(
        ("cohort_id", "b_cohorts", _m.c.cohort_id),
        ("user_id", "b_users", _m.c.user_id),
        ("at", "b_ats", _m.c[column]),
    )
    return (
        update(_m)
        .where(
            _m.c.cohort_id == wanted.c.cohort_id,
            _m.c.user_id == wanted.c.user_id,
            _m.c[column].is_(None),
            _c.c.id == _m.c.cohort_id,
        )
        .values({column: wanted.c.at, "stage": func.greatest(_m.c.stage, int(stage))})
        .returning(_m.c.cohort_id, *TIME_COLUMNS, wanted.c.at.label("moved_at"), _c.c.timezone)
    )


def _stamp_pg(where: list[Any], values: dict[str, Any]) -> Any:
    """``UPDATE cohort_members SET … FROM (the chosen rows, locked) RETURNING`` their
    timestamps from before the update and the cohort's time zone."""
    chosen = (
        select(_m.c.id.label("member_id"), *TIME_COLUMNS, _c.c.timezone)
        .join(_c, _c.c.id == _m.c.cohort_id)
        .where(*where)
        .with_for_update(of=_m)
        .subquery("chosen")
    )
    return (
        update(_m)
        .where(_m.c.id == chosen.c.member_id)
        .values(values)
        .returning(*(chosen.c[c.name] for c in TIME_COLUMNS), chosen.c.timezone)
    )
