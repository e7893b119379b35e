"""Handlers are safe to run twice on the same update.

The update inbox marks an update handled after its handler ran; a crash in between means
the handler runs again on the same update at the next start. Each kind the bot handles
is fed twice here, through the real dispatcher against the local Bot API server: the
second time changes nothing and writes to nobody again.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.telegram.i18n import Catalog
from storage.models import CohortMember
from storage.uow import SqlStore
from tests.support.harness import (
    LEADER,
    TASKS,
    WARMUP,
    Harness,
    at,
    launch,
    running_bot,
    setup_world,
)

CATALOG = Catalog.load()
KINDS = ["callback_query", "chat_join_request", "chat_member", "message", "my_chat_member"]
ANSWERS, QUIET = 1001, 1002


async def twice(h: Harness, update: dict[str, object]) -> None:
    await h.feed(update)
    await h.feed(update)


async def member(h: Harness, telegram_id: int) -> CohortMember | None:
    async with h.store.transaction() as tx:
        ref = await tx.users.by_telegram(telegram_id)
    if ref is None:
        return None
    async with h.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(CohortMember.__table__).where(CohortMember.user_id == ref.user_id)
            )
        ).all()
    assert len(row) <= 1
    return row[0] if row else None  # type: ignore[return-value]


async def test_every_kind_of_update_handled_twice_counts_once(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00"), allowed_updates=KINDS) as h:
        setup_world(h)
        api = h.api
        code = await launch(h)
        await h.say(TASKS, LEADER, f"/taskgroup {code}")

        # Joins (attributed, counted once) and a leave (stamped once).
        for user_id in (ANSWERS, QUIET, 1003):
            await twice(h, api.join(WARMUP, user_id))
        joined = await member(h, ANSWERS)
        assert joined is not None and joined.left_at is None
        await twice(h, api.leave(WARMUP, 1003))
        left = await member(h, 1003)
        assert left is not None and left.left_at is not None
        await h.run_until(at(7, "20:46"))  # the pitch is out
        assert (await member(h, 1003)).left_at == left.left_at  # type: ignore[union-attr]

        # A "1": recorded once, acknowledged (a reaction, not a message).
        sent = len(api.messages(WARMUP))
        await twice(h, api.say(WARMUP, ANSWERS, "1"))
        answered = await member(h, ANSWERS)
        assert answered is not None and answered.replied_at is not None
        assert len(api.messages(WARMUP)) == sent  # no reply in the group, however often
        await h.run_until(at(7, "21:00"))

        # Join requests to the task group: the responder let in and told once, the
        # other declined and told once.
        admission = [n for n, s in api.invite_links.items() if s.creates_join_request]
        dms = {u: len(api.messages(u)) for u in (ANSWERS, QUIET)}
        await twice(h, api.request_join(TASKS, ANSWERS, admission[0]))
        await twice(h, api.request_join(TASKS, QUIET, admission[0]))
        assert len(api.messages(ANSWERS)) == dms[ANSWERS] + 1
        assert len(api.messages(QUIET)) == dms[QUIET] + 1
        assert api.messages(QUIET)[-1]["text"] == CATALOG.text("en", "admission.refused")
        admitted = await member(h, ANSWERS)
        assert admitted is not None and admitted.admitted_at is not None
        assert (await member(h, QUIET)).admitted_at is None  # type: ignore[union-attr]

        # A leader's command: the state changes once; the second answer says so.
        await twice(h, api.say(WARMUP, LEADER, "/pause"))
        texts = h.texts(WARMUP)[-2:]
        assert texts == [
            CATALOG.text("en", "pause.done", code=code),
            CATALOG.text("en", "pause.already", code=code),
        ]
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_code(code)
        assert cohort is not None and cohort.status == "paused"

        # The bot removed from the group: the cohort paused once, the leader told once.
        await h.say(WARMUP, LEADER, "/resume")
        assert h.last_text(WARMUP) == CATALOG.text("en", "resume.done", code=code)
        told = len(api.messages(LEADER))
        await twice(h, api.kick_bot(WARMUP))
        assert len(api.messages(LEADER)) == told + 1
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_code(code)
        assert cohort is not None and cohort.status == "paused"
