"""Group chatter reaches the same handler whether the dispatcher reads it from the raw
update (``bot.telegram.raw.read_said``, the hot path) or through aiogram's models (a
parsed update, or one the raw reading declines): counted alike, a "1" recorded alike,
service messages counted by neither."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.telegram.raw import read_said
from storage.models import MemberActivity
from storage.uow import SqlStore
from tests.support.harness import WARMUP, Harness, at, launch, running_bot, setup_world

KINDS = ["callback_query", "chat_join_request", "chat_member", "message", "my_chat_member"]
RAW, PARSED = 1001, 1002


async def counted(h: Harness) -> dict[int, int]:
    await h.services.flush_activity()
    async with h.store.engine.connect() as conn:
        rows = await conn.execute(
            select(MemberActivity.user_id, func.sum(MemberActivity.messages)).group_by(
                MemberActivity.user_id
            )
        )
        by_user = {int(u): int(n) for u, n in rows}
    async with h.store.transaction() as tx:
        refs = {tg: await tx.users.by_telegram(tg) for tg in (RAW, PARSED)}
    return {tg: by_user.get(ref.user_id, 0) for tg, ref in refs.items() if ref is not None}


async def test_raw_and_parsed_chatter_are_handled_alike(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00"), allowed_updates=KINDS) as h:
        setup_world(h)
        api = h.api
        await launch(h)
        for tg in (RAW, PARSED):
            await h.feed(api.join(WARMUP, tg))
        service = [u for u in api.pending_updates() if "new_chat_members" in u.get("message", {})]
        assert service and all(read_said(u) is None for u in service)
        await h.feed(service[0])  # raw: declined by the fast path, aiogram's way
        await h.feed_parsed(service[1])
        assert await counted(h) == {RAW: 0, PARSED: 0}  # joining is not taking part

        await h.run_until(at(1, "10:00"))
        hello = api.say(WARMUP, RAW, "hello")
        assert read_said(hello) is not None
        await h.feed(hello)
        await h.feed_parsed(api.say(WARMUP, PARSED, "hello"))
        photo = api.say(WARMUP, RAW, "x")
        photo["message"].pop("text")
        photo["message"]["photo"] = [
            {"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}
        ]
        await h.feed(photo)
        assert await counted(h) == {RAW: 2, PARSED: 1}

        await h.run_until(at(7, "20:46"))  # the pitch
        await h.feed(api.say(WARMUP, RAW, "1"))
        await h.feed_parsed(api.say(WARMUP, PARSED, "1"))
        assert len(api.reactions) == 2
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(WARMUP)
            assert cohort is not None
            replied = [
                await tx.members.stage(cohort.id, (await tx.users.by_telegram(tg)).user_id)  # type: ignore[union-attr]
                for tg in (RAW, PARSED)
            ]
        assert all(stage is not None and stage.name == "REPLIED" for stage in replied)
