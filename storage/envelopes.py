"""Red envelopes in SQL: pre-split shares claimed in batches, the ledger credited in the
same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from funnels.kernel.records import EnvelopeRecord, ShareClaim
from funnels.kernel.stages import Stage
from storage.sql import Repo, one_of, prepared
from storage.tables import (
    cohort_members as _m,
    envelope_shares as _es,
    envelopes as _e,
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


class SqlEnvelopes(Repo):
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

    async def reopen(
        self, envelope_id: int, opened_at: datetime, expires_at: datetime
    ) -> EnvelopeRecord | None:
        row = (
            await self.conn.execute(
                update(_e)
                .where(_e.c.id == envelope_id, _e.c.message_id.is_(None), _e.c.closed_at.is_(None))
                .values(opened_at=opened_at, expires_at=expires_at)
                .returning(*_e.c)
            )
        ).first()
        return _envelope(row) if row else None

    async def set_message(self, envelope_id: int, chat_id: int, message_id: int) -> None:
        await self.conn.execute(
            update(_e).where(_e.c.id == envelope_id).values(chat_id=chat_id, message_id=message_id)
        )

    async def get(self, envelope_id: int) -> EnvelopeRecord | None:
        row = (await self.conn.execute(select(_e).where(_e.c.id == envelope_id))).first()
        return _envelope(row) if row else None

    async def by_step(self, cohort_id: int, step_key: str) -> EnvelopeRecord | None:
        statement = prepared(
            "envelopes.by_step",
            self.dialect,
            lambda: select(_e).where(
                _e.c.cohort_id == bindparam("cohort_id"), _e.c.step_key == bindparam("step_key")
            ),
        )
        row = (
            await self.conn.execute(statement, {"cohort_id": cohort_id, "step_key": step_key})
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
                prepared(
                    "claim_stages",
                    self.dialect,
                    lambda: select(_m.c.user_id, _m.c.stage).where(
                        _m.c.cohort_id == bindparam("cohort"),
                        one_of(self.dialect, _m.c.user_id, "users"),
                    ),
                ),
                {"cohort": cohort_id, "users": users},
            )
        }
        held = {
            r.user_id: int(r.amount_minor)
            for r in await self.conn.execute(
                prepared(
                    "claim_held",
                    self.dialect,
                    lambda: select(_es.c.user_id, _es.c.amount_minor).where(
                        _es.c.envelope_id == bindparam("envelope"),
                        one_of(self.dialect, _es.c.user_id, "users"),
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

    # Long: the hot path of a crowd's taps, every statement of one transaction in order.
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
                    prepared("claim_one", self.dialect, self._claim_one),
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
                stage=Stage(stages[user_id]) if user_id in stages else None,
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
                    prepared("claim_take_one", self.dialect, self._claim_take_one),
                    {"b_envelope": envelope_id, "b_user": winners[0], "b_at": at},
                )
            ).scalar_one()
            await self.conn.execute(
                prepared("claim_count", self.dialect, self._claim_count),
                {"b_envelope": envelope_id, "b_n": 1, "b_amount": amount},
            )
            last = env.claimed + 1 == env.shares
            result[winners[0]] = claim("claimed", winners[0], int(amount), last)
            return result
        free = (
            await self.conn.execute(
                prepared(
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
            prepared(
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
            prepared("claim_count", self.dialect, self._claim_count),
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
        statement = prepared(
            "envelopes.full_and_open",
            self.dialect,
            lambda: (
                select(_e.c.id)
                .where(_e.c.closed_at.is_(None), _e.c.claimed >= _e.c.shares)
                .order_by(_e.c.id)
                .limit(bindparam("limit"))
            ),
        )
        rows = await self.conn.execute(statement, {"limit": limit})
        return [int(r) for r in rows.scalars()]
