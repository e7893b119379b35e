"""The task ladder in SQL: progress per task, inbound events, the ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, or_, select, text, update

from funnels.kernel.records import IncomingEvent, LedgerCredit, TaskProgressRecord
from funnels.ladder.ports import WAITING
from storage.db import insert_ignore
from storage.inbound import store_events
from storage.sql import Repo, insert_many, one_of, prepared, unnested
from storage.tables import (
    cohort_members as _m,
    cohorts as _c,
    inbound_events as _ev,
    ledger_entries as _l,
    task_progress as _tp,
    task_unique_keys as _tu,
    users as _u,
)


def _progress(raw: Mapping[str, Any] | None) -> dict[int, int]:
    return {int(k): int(v) for k, v in (raw or {}).items()}


def _record(r: Any) -> TaskProgressRecord:
    return TaskProgressRecord(
        r.id, r.cohort_id, r.user_id, r.task_id, _progress(r.progress), r.completed_at
    )


def _save_pg() -> Any:
    """``UPDATE task_progress … FROM unnest(ids, progress, done)``: a batch's progress
    rows saved in one statement (a None completion keeps what is stored)."""
    rows = unnested(
        ("id", "b_ids", _tp.c.id),
        ("progress", "b_progress", _tp.c.progress),
        ("done", "b_done", _tp.c.completed_at),
    )
    return (
        update(_tp)
        .where(_tp.c.id == rows.c.id)
        .values(
            progress=rows.c.progress,
            updated_at=bindparam("b_at", type_=_tp.c.updated_at.type),
            completed_at=func.coalesce(_tp.c.completed_at, rows.c.done),
        )
    )


_PROGRESS_COLUMNS = (
    _tp.c.id,
    _tp.c.cohort_id,
    _tp.c.user_id,
    _tp.c.task_id,
    _tp.c.progress,
    _tp.c.completed_at,
)


def _progress_rows_pg() -> Any:
    """The progress rows of the (cohort, user, task) triples bound as three arrays,
    locked in id order (``FOR UPDATE OF task_progress``): concurrent batches queue
    instead of deadlocking."""
    wanted = unnested(
        ("cohort_id", "b_cohorts", _tp.c.cohort_id),
        ("user_id", "b_users", _tp.c.user_id),
        ("task_id", "b_tasks", _tp.c.task_id),
    )
    return (
        select(*_PROGRESS_COLUMNS)
        .join(
            wanted,
            and_(
                _tp.c.cohort_id == wanted.c.cohort_id,
                _tp.c.user_id == wanted.c.user_id,
                _tp.c.task_id == wanted.c.task_id,
            ),
        )
        .order_by(_tp.c.id)
        .with_for_update(of=_tp)
    )


def _rewarded_pg() -> Any:
    """``UPDATE task_progress SET reward_status … FROM unnest(ids, statuses)``."""
    rows = unnested(("id", "b_ids", _tp.c.id), ("status", "b_statuses", _tp.c.reward_status))
    return update(_tp).where(_tp.c.id == rows.c.id).values(reward_status=rows.c.status)


class SqlTasks(Repo):
    async def add_unique_many(self, rows: Sequence[tuple[int, int, str]]) -> None:
        if rows:
            await self.conn.execute(
                insert_ignore(self.dialect, _tu, "progress_id", "leaf", "value"),
                [{"progress_id": p, "leaf": leaf, "value": v[:128]} for p, leaf, v in rows],
            )

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
            )
        )

    async def save_many(
        self, rows: Sequence[tuple[int, Mapping[int, int], datetime | None]], at: datetime
    ) -> None:
        """``save`` for many rows in one round trip: (id, progress, completed_at); a None
        completion keeps what is stored."""
        if not rows:
            return
        if self.dialect == "postgresql":
            latest = {pid: (values, done) for pid, values, done in rows}  # the last one wins
            await self.conn.execute(
                prepared("progress_save", self.dialect, _save_pg),
                {
                    "b_ids": list(latest),
                    "b_progress": [{str(k): v for k, v in p.items()} for p, _ in latest.values()],
                    "b_done": [done for _, done in latest.values()],
                    "b_at": at,
                },
            )
            return
        await self.conn.execute(
            prepared("progress_save", self.dialect, self._save_statement),
            [
                {
                    "b_id": pid,
                    "b_progress": {str(k): v for k, v in values.items()},
                    "b_at": at,
                    "b_done": done,
                }
                for pid, values, done in rows
            ],
        )

    async def rewarded_many(self, rows: Sequence[tuple[int, str]]) -> None:
        """The reward status of finished tasks' progress rows: (id, status)."""
        if not rows:
            return
        if self.dialect == "postgresql":
            latest = dict(rows)
            await self.conn.execute(
                prepared("progress_rewarded", self.dialect, _rewarded_pg),
                {"b_ids": list(latest), "b_statuses": list(latest.values())},
            )
            return
        await self.conn.execute(
            prepared(
                "progress_rewarded",
                self.dialect,
                lambda: (
                    update(_tp)
                    .where(_tp.c.id == bindparam("b_id"))
                    .values(reward_status=bindparam("b_status"))
                ),
            ),
            [{"b_id": pid, "b_status": status} for pid, status in rows],
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
        found = await self._progress_rows(wanted)
        missing = [k for k in wanted if k not in found]
        if missing:  # a member's first event for a task (most batches have none)
            await insert_many(
                self.conn,
                _tp,
                [
                    {"cohort_id": c, "user_id": u, "task_id": t, "progress": {}, "updated_at": at}
                    for c, u, t in missing
                ],
                "cohort_id",
                "user_id",
                "task_id",
            )
            found = await self._progress_rows(wanted)
        return found

    async def _progress_rows(
        self, wanted: Sequence[tuple[int, int, str]]
    ) -> dict[tuple[int, int, str], TaskProgressRecord]:
        if self.dialect == "postgresql":
            # Exactly the triples wanted, each found by its unique index, in a statement
            # whose text is the same whatever the batch's size (prepared once per
            # connection, where an IN list of a new length is a new statement each time).
            rows = await self.conn.execute(
                prepared("progress_rows", self.dialect, _progress_rows_pg),
                {
                    "b_cohorts": [c for c, _, _ in wanted],
                    "b_users": [u for _, u, _ in wanted],
                    "b_tasks": [t for _, _, t in wanted],
                },
            )
            return {(r.cohort_id, r.user_id, r.task_id): _record(r) for r in rows}
        # SQLite: the users, cohorts and tasks as IN lists (one writer at a time: no
        # locks), the triples not asked for left out here.
        statement = prepared(
            "progress_rows",
            self.dialect,
            lambda: (
                select(*_PROGRESS_COLUMNS)
                .where(
                    one_of(self.dialect, _tp.c.user_id, "b_users"),
                    one_of(self.dialect, _tp.c.cohort_id, "b_cohorts"),
                    one_of(self.dialect, _tp.c.task_id, "b_tasks"),
                )
                .order_by(_tp.c.id)
            ),
        )
        params = {
            "b_users": sorted({u for _, u, _ in wanted}),
            "b_cohorts": sorted({c for c, _, _ in wanted}),
            "b_tasks": sorted({t for _, _, t in wanted}),
        }
        want = set(wanted)
        found: dict[tuple[int, int, str], TaskProgressRecord] = {}
        for r in await self.conn.execute(statement, params):
            key = (r.cohort_id, r.user_id, r.task_id)
            if key in want:
                found[key] = _record(r)
        return found

    async def for_member(self, cohort_id: int, user_id: int) -> dict[str, TaskProgressRecord]:
        rows = (
            await self.conn.execute(
                select(_tp).where(_tp.c.cohort_id == cohort_id, _tp.c.user_id == user_id)
            )
        ).all()
        return {r.task_id: _record(r) for r in rows}

    async def unique_values_many(
        self, progress_ids: Sequence[int], values: Sequence[str]
    ) -> dict[tuple[int, int], set[str]]:
        """(progress id, leaf) -> which of ``values`` were already counted there."""
        out: dict[tuple[int, int], set[str]] = {}
        if not progress_ids or not values:
            return out
        ids = sorted(set(progress_ids))
        statement = prepared(
            "progress_unique_values",
            self.dialect,
            lambda: select(_tu.c.progress_id, _tu.c.leaf, _tu.c.value).where(
                one_of(self.dialect, _tu.c.progress_id, "b_ids"),
                one_of(self.dialect, _tu.c.value, "b_values"),
            ),
        )
        # (PostgreSQL takes each list as one array; SQLite's IN lists stay under its
        # limit on variables.)
        step = len(values) if self.dialect == "postgresql" else 500
        for chunk in range(0, len(values), step):
            rows = await self.conn.execute(
                statement, {"b_ids": ids, "b_values": list(values[chunk : chunk + step])}
            )
            for r in rows:
                out.setdefault((r.progress_id, r.leaf), set()).add(r.value)
        return out


class SqlEvents(Repo):
    async def store(
        self, source: str, events: Sequence[IncomingEvent], at: datetime
    ) -> dict[str, int]:
        return await store_events(self.conn, source, events, at)

    async def claim(
        self,
        ids: Sequence[int] | None,
        limit: int,
        received_before: datetime | None = None,
        *,
        least: int | None = None,
    ) -> list[tuple[int, IncomingEvent]]:
        """Unapplied events, oldest first: pending ones (received before
        ``received_before``, if given), or with ``ids`` those of them still pending or
        waiting. Locked until the transaction ends on PostgreSQL, where rows another
        process holds are skipped (it applies them)."""
        query = select(
            _ev.c.id,
            _ev.c.event_id,
            _ev.c.type,
            _ev.c.occurred_at,
            _ev.c.member_ref,
            _ev.c.telegram_user_id,
            _ev.c.data,
        )
        if ids is None:
            query = query.where(_ev.c.state == "pending")
            if received_before is not None:
                query = query.where(_ev.c.received_at < received_before)
        else:
            if not ids:
                return []
            query = query.where(
                one_of(self.dialect, _ev.c.id, "ids", sorted(set(ids))),
                _ev.c.state.in_(("pending", "waiting")),
            )
        query = query.order_by(_ev.c.id).limit(limit)
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        if ids is None:
            async with self.in_index_order():
                if least is not None and received_before is None and self.dialect == "postgresql":
                    limit = await self._share(limit, least)
                    query = query.limit(limit)
                rows = (await self.conn.execute(query)).all() if limit else []
        else:
            rows = (await self.conn.execute(query)).all()
        return [
            (
                r.id,
                IncomingEvent(
                    r.event_id,
                    r.type,
                    r.occurred_at,
                    r.member_ref,
                    r.telegram_user_id,
                    dict(r.data or {}),
                ),
            )
            for r in rows
        ]

    async def _share(self, limit: int, least: int) -> int:
        """How many to claim of the free pending events (``claim``'s ``least``): the
        first free one is held, and those from it that no applier has claimed yet are
        counted, up to twice ``limit``."""
        row = (
            await self.conn.execute(
                prepared("events_first_free", self.dialect, _first_free_pg),
                {"b_cap": 2 * limit},
            )
        ).first()
        if row is None:
            return 0
        ahead: int = row.ahead
        return limit if ahead >= 2 * limit else min(limit, max(least, -(-ahead // 2)))

    async def oldest_pending(self) -> datetime | None:
        statement = prepared(
            "events_oldest_pending",
            self.dialect,
            lambda: (
                select(_ev.c.received_at)
                .where(_ev.c.state == "pending")
                .order_by(_ev.c.id)
                .limit(1)
            ),
        )
        return (await self.conn.execute(statement)).scalar()

    async def hold_members(self, user_ids: Sequence[int]) -> set[int]:
        """PostgreSQL: a transaction-scoped advisory lock per member, tried without
        waiting (``pg_try_advisory_xact_lock``); the members it got. SQLite has one
        writer at a time: all of them."""
        if self.dialect != "postgresql" or not user_ids:
            return set(user_ids)
        rows = await self.conn.execute(
            prepared("events_hold", self.dialect, _hold_pg), {"b_users": sorted(set(user_ids))}
        )
        return {int(r.user_id) for r in rows}

    async def waiting_ready(self, limit: int) -> list[int]:
        """Waiting events whose member is now known and in a running task group."""
        statement = prepared("events_waiting_ready", self.dialect, _waiting_ready)
        return [int(r.id) for r in await self.conn.execute(statement, {"b_limit": limit})]

    async def expire_waiting(self, received_before: datetime, at: datetime) -> int:
        """Give up on waiting events received before ``received_before``."""
        statement = prepared(
            "events_expire_waiting",
            self.dialect,
            lambda: (
                update(_ev)
                .where(_ev.c.state == "waiting", _ev.c.received_at < bindparam("b_before"))
                .values(state="handled", outcome="expired", handled_at=bindparam("b_at"))
            ),
        )
        result = await self.conn.execute(statement, {"b_before": received_before, "b_at": at})
        return int(result.rowcount)

    async def mark_handled(
        self, ids: Sequence[tuple[int, int | None, int | None, str]], at: datetime
    ) -> None:
        """Applied; an event whose member is unknown or not in a task group yet waits."""
        if not ids:
            return
        if self.dialect == "postgresql":  # one statement, the rows as one array per column
            await self.conn.execute(
                prepared("events_mark", self.dialect, _mark_pg),
                {
                    "b_ids": [r for r, _, _, _ in ids],
                    "b_users": [u for _, u, _, _ in ids],
                    "b_cohorts": [c for _, _, c, _ in ids],
                    "b_outcomes": [o for _, _, _, o in ids],
                    "b_states": ["waiting" if o in WAITING else "handled" for _, _, _, o in ids],
                    "b_handled": [None if o in WAITING else at for _, _, _, o in ids],
                },
            )
            return
        await self.conn.execute(
            prepared(
                "events_mark",
                self.dialect,
                lambda: (
                    update(_ev)
                    .where(_ev.c.id == bindparam("row_id"))
                    .values(
                        user_id=bindparam("uid"),
                        cohort_id=bindparam("cid"),
                        outcome=bindparam("result"),
                        state=bindparam("to_state"),
                        handled_at=bindparam("done_at", type_=_ev.c.handled_at.type),
                    )
                ),
            ),
            [
                {
                    "row_id": r,
                    "uid": u,
                    "cid": c,
                    "result": o,
                    "to_state": "waiting" if o in WAITING else "handled",
                    "done_at": None if o in WAITING else at,
                }
                for r, u, c, o in ids
            ],
        )

    async def tally(self) -> dict[tuple[str, str | None], int]:
        """How many events are in each (state, outcome)."""
        rows = await self.conn.execute(
            select(_ev.c.state, _ev.c.outcome, func.count()).group_by(_ev.c.state, _ev.c.outcome)
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}


class SqlLedger(Repo):
    async def credit(self, entry: LedgerCredit, at: datetime) -> bool:
        statement = prepared(
            "ledger_credit",
            self.dialect,
            lambda: insert_ignore(self.dialect, _l, "idempotency_key"),
        )
        result = await self.conn.execute(
            statement,
            {
                "idempotency_key": entry.key,
                "user_id": entry.user_id,
                "cohort_id": entry.cohort_id,
                "kind": entry.kind,
                "ref": entry.ref,
                "amount_minor": entry.amount_minor,
                "currency": entry.currency,
                "created_at": at,
                "paid_out": False,
            },
        )
        return result.rowcount == 1

    async def credit_many(self, entries: Sequence[LedgerCredit], at: datetime) -> int:
        return await insert_many(
            self.conn,
            _l,
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
            "idempotency_key",
        )

    async def credited(self, keys: Sequence[str]) -> set[str]:
        """Which of these idempotency keys have an entry already."""
        if not keys:
            return set()
        statement = prepared(
            "ledger_credited",
            self.dialect,
            lambda: select(_l.c.idempotency_key).where(
                one_of(self.dialect, _l.c.idempotency_key, "keys")
            ),
        )
        rows = await self.conn.execute(statement, {"keys": sorted(set(keys))})
        return {r[0] for r in rows}

    async def untold_rewards(
        self, cohort_id: int, since: datetime, until: datetime, limit: int
    ) -> tuple[list[tuple[str, str]], int]:
        where = (
            _l.c.cohort_id == cohort_id,
            _l.c.kind == "reward",
            _l.c.created_at >= since,
            _l.c.created_at < until,
            _u.c.unreachable_at.is_not(None),
        )
        # One statement (the count is a window over every row, taken before the limit):
        # the list and the count agree whatever commits meanwhile.
        rows = (
            await self.conn.execute(
                select(_u.c.display_name, _l.c.ref, func.count().over().label("total"))
                .select_from(_l.join(_u, _u.c.id == _l.c.user_id))
                .where(*where)
                .order_by(_l.c.id)
                .limit(limit)
            )
        ).all()
        listed = [(r.display_name, r.ref) for r in rows]
        return listed, int(rows[0].total) if rows else 0

    async def balance(self, user_id: int) -> dict[str, int]:
        rows = (
            await self.conn.execute(
                select(_l.c.currency, func.sum(_l.c.amount_minor))
                .where(_l.c.user_id == user_id)
                .group_by(_l.c.currency)
            )
        ).all()
        return {r[0]: int(r[1]) for r in rows}


MEMBER_LOCKS = 0x6D65_6D62 << 32
"""Where the advisory lock keys of members being applied start (``memb`` in the upper
half of the 64-bit key, the user id in the lower): apart from any other use of them."""


def _first_free_pg() -> Any:
    """The first pending event no other transaction holds (held now), and how many
    pending events there are from it on that no transaction held before, counted up to
    ``b_cap``. (Counted once, for the row held: not for each row skipped on the way to
    it.)

    A row lock leaves its transaction in the row's ``xmax``, so ``xmax = 0`` tells the
    rows nobody has claimed from those another applier has in hand, without taking or
    waiting for a lock. Counting those too would count the other appliers' batches as
    free whenever the first free row is one let go behind them (an event left for a
    member another batch held): the claim would then take a full batch and leave the
    others nothing. Rows let go keep their ``xmax`` and are not counted either: the
    count only sizes the claim, which takes them first all the same."""
    first = (
        select(_ev.c.id)
        .where(_ev.c.state == "pending")
        .order_by(_ev.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .cte("first_free")
        .prefix_with("MATERIALIZED")
    )
    ahead = _ev.alias("ahead")
    counted = (
        select(literal(1))
        .where(
            ahead.c.state == "pending",
            ahead.c.id >= first.c.id,
            or_(ahead.c.id == first.c.id, text("ahead.xmax = 0")),  # (this one is held now)
        )
        .correlate(first)
        .limit(bindparam("b_cap"))
        .subquery("counted")
    )
    return select(
        first.c.id, select(func.count()).select_from(counted).scalar_subquery().label("ahead")
    )


def _waiting_ready() -> Any:
    """Waiting events whose member is now known and admitted to a running or paused
    cohort, oldest first, up to ``b_limit``."""
    member_of = or_(
        and_(_ev.c.member_ref.is_not(None), _u.c.ref_code == _ev.c.member_ref),
        and_(
            _ev.c.member_ref.is_(None),
            _ev.c.telegram_user_id.is_not(None),
            _u.c.telegram_id == _ev.c.telegram_user_id,
        ),
    )
    return (
        select(_ev.c.id)
        .join(_u, member_of)
        .join(_m, and_(_m.c.user_id == _u.c.id, _m.c.admitted_at.is_not(None)))
        .join(_c, and_(_c.c.id == _m.c.cohort_id, _c.c.status.in_(("running", "paused"))))
        .where(_ev.c.state == "waiting")
        .distinct()
        .order_by(_ev.c.id)
        .limit(bindparam("b_limit"))
    )


def _hold_pg() -> Any:
    """The users of ``b_users`` whose advisory lock this transaction got, each tried
    once, in the order given."""
    users = unnested(("user_id", "b_users", _ev.c.user_id))
    return select(users.c.user_id).where(
        func.pg_try_advisory_xact_lock(MEMBER_LOCKS + users.c.user_id)
    )


def _mark_pg() -> Any:
    """``UPDATE inbound_events … FROM unnest(ids, users, cohorts, outcomes, states,
    handled)``: a batch's events marked in one statement."""
    rows = unnested(
        ("id", "b_ids", _ev.c.id),
        ("user_id", "b_users", _ev.c.user_id),
        ("cohort_id", "b_cohorts", _ev.c.cohort_id),
        ("outcome", "b_outcomes", _ev.c.outcome),
        ("state", "b_states", _ev.c.state),
        ("handled_at", "b_handled", _ev.c.handled_at),
    )
    return (
        update(_ev)
        .where(_ev.c.id == rows.c.id)
        .values(
            user_id=rows.c.user_id,
            cohort_id=rows.c.cohort_id,
            outcome=rows.c.outcome,
            state=rows.c.state,
            handled_at=rows.c.handled_at,
        )
    )
