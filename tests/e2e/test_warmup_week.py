"""A whole warm-up week in Telegram, end to end: the shipped 7+21 script (English) run by
the real bot against the local Bot API server on a virtual clock.

launch -> joins by tracked links -> posts, talks (pin, slow mode), envelopes grabbed ->
pitch -> "1" replies (reactions, one batched nudge) -> join requests to the task group
(responders approved and admitted, anyone else declined with a hint).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from bot.telegram.i18n import Catalog
from funnels.kernel.stages import Stage
from storage.models import EnvelopeShare, LedgerEntry, MemberActivity
from storage.uow import SqlStore
from tests.support.harness import (
    LEADER,
    MEMBERS,
    TASKS,
    WARMUP,
    Harness,
    at,
    launch,
    members_of,
    running_bot,
    setup_world,
)

CATALOG = Catalog.load()
RESPONDERS = MEMBERS[:10]


async def test_a_warmup_week_in_telegram(store: SqlStore) -> None:
    # The update kinds `funnelbot run` asks Telegram for, so the server queues the task
    # group's arrivals after each approval as Telegram would.
    kinds = ["callback_query", "chat_join_request", "chat_member", "message", "my_chat_member"]
    async with running_bot(store, at(0, "10:00"), allowed_updates=kinds) as h:
        setup_world(h)
        api = h.api

        # A stranger cannot launch; the leader can, once an admin granted the role.
        await h.say(WARMUP, 777, "/launch")
        assert h.last_text(WARMUP) == CATALOG.text("en", "launch.not_leader")
        code = await launch(h)
        answer = h.last_text(WARMUP)
        assert code in answer and "d7_pitch" in answer
        leader_links = [link for link, s in api.invite_links.items() if s.chat_id == WARMUP]
        assert len(leader_links) == 1 and leader_links[0] in answer
        await h.say(WARMUP, LEADER, "/launch")
        assert h.last_text(WARMUP) == CATALOG.text("en", "launch.already_bound", code=code)

        # The task group is bound with a join-request link.
        await h.say(TASKS, LEADER, f"/taskgroup {code}")
        assert h.last_text(TASKS) == CATALOG.text("en", "taskgroup.bound", code=code)
        admission = [link for link, s in api.invite_links.items() if s.chat_id == TASKS]
        assert len(admission) == 1 and api.invite_links[admission[0]].creates_join_request

        # Members come in: 20 by the leader's link, 10 by member 1001's own link.
        for user_id in MEMBERS[:20]:
            await h.feed(api.join(WARMUP, user_id, invite_link=leader_links[0]))
        await h.feed(api.start_bot(1001))
        await h.say(1001, 1001, "/mylink")
        member_link = next(
            link
            for link, s in api.invite_links.items()
            if s.chat_id == WARMUP and link != leader_links[0]
        )
        assert member_link in h.last_text(1001)
        for user_id in MEMBERS[20:]:
            await h.feed(api.join(WARMUP, user_id, invite_link=member_link))
        joined = await members_of(h.store)
        async with h.store.transaction() as tx:
            leader = await tx.users.by_telegram(LEADER)
            inviter = await tx.users.by_telegram(1001)
        assert leader is not None and inviter is not None
        by_tg = {tg: await _ref(h, tg) for tg in MEMBERS}
        # Every member has an inviter: whoever's link they came by.
        assert Counter(joined[by_tg[t]].inviter_id for t in MEMBERS) == {
            leader.user_id: 20,
            inviter.user_id: 10,
        }

        # Day 1: the welcome post, then the noon envelope.
        await h.run_until(at(1, "12:00"))
        envelope = api.messages(WARMUP)[-1]
        assert envelope["reply_markup"]["inline_keyboard"][0][0]["callback_data"].startswith(
            "grab:"
        )
        first_tap = api.tap(WARMUP, envelope["message_id"], 1001)
        await h.feed(first_tap)
        await h.feed(api.redeliver(first_tap))  # Telegram delivers the tap again
        await h.feed(api.tap(WARMUP, envelope["message_id"], 1001))  # and they tap again
        for user_id in MEMBERS[1:15]:
            await h.feed(api.tap(WARMUP, envelope["message_id"], user_id))
        answers = [a.text for a in api.callback_answers.values()]
        # Every tap answered once (the re-delivery shares its query with the first tap).
        assert len(answers) == 16
        assert sum(a.startswith("这个红包你已经抢过了") for a in answers) == 1  # 1001 reads zh-CN
        async with h.store.engine.connect() as conn:
            shares = (
                await conn.execute(
                    select(func.count(), func.count(func.distinct(EnvelopeShare.user_id))).where(
                        EnvelopeShare.user_id.is_not(None)
                    )
                )
            ).one()
            credited = (await conn.execute(select(func.count()).select_from(LedgerEntry))).scalar()
        assert tuple(shares) == (15, 15)
        assert credited == 15
        await h.feed(api.start_bot(1002))
        await h.say(1002, 1002, "/balance")
        assert "$" in h.last_text(1002) or "US$" in h.last_text(1002)

        # Expiry closes it: the message is edited once into its summary.
        await h.run_until(at(1, "12:10"))
        edited = next(m for m in api.messages(WARMUP) if m["message_id"] == envelope["message_id"])
        assert edited["edited"] == 1 and "15" in edited["text"]
        assert not edited.get("reply_markup")

        # People chat: counted per member and day, never stored as text.
        for user_id in MEMBERS[:5]:
            await h.say(WARMUP, user_id, "good morning everyone")
        await h.run_until(at(2, "19:00"))
        async with h.store.engine.connect() as conn:
            counted = (await conn.execute(select(func.sum(MemberActivity.messages)))).scalar()
        assert counted == 5

        # Day 2's talk: pinned while it runs, slow mode deletes a rushed second message.
        pinned_before = len(api.calls_of("pinChatMessage"))  # the welcome post is pinned
        await h.run_until(at(2, "20:01"))
        talk_pin = api.calls_of("pinChatMessage")[pinned_before:]
        assert len(talk_pin) == 1
        await h.say(WARMUP, 1003, "great talk")
        await h.say(WARMUP, 1003, "really great")
        assert len(api.calls_of("deleteMessage")) == 1
        await h.run_until(at(2, "20:10"))
        unpinned = api.calls_of("unpinChatMessage")
        assert [c.params["message_id"] for c in unpinned] == [talk_pin[0].params["message_id"]]
        await h.say(WARMUP, 1003, "thanks!")  # slow mode is over
        assert len(api.calls_of("deleteMessage")) == 1

        # The pitch; "1" is acknowledged with a reaction, once.
        await h.run_until(at(7, "20:45"))
        for user_id in RESPONDERS:
            await h.say(WARMUP, user_id, "1")
        await h.say(WARMUP, RESPONDERS[0], "1")  # again: already counted
        await h.say(WARMUP, MEMBERS[12], "is 1 enough?")  # not a whole-message answer
        assert len(api.reactions) == len(RESPONDERS)
        sent_before = len(api.messages(WARMUP))
        assert api.messages(WARMUP)[-1]["text"].startswith("That's seven days")  # no replies
        await h.tick(at(7, "20:51"))
        await h.tick(at(7, "20:52"))  # the nudge is batched: not again a minute later
        nudges = api.messages(WARMUP)[sent_before:]
        assert len(nudges) == 1
        button = nudges[0]["reply_markup"]["inline_keyboard"][0][0]
        assert button["url"] == admission[0]

        # Responders ask to join the task group and get in; others are refused kindly.
        for user_id in RESPONDERS:
            await h.feed(api.request_join(TASKS, user_id, admission[0]))
        await h.feed(api.request_join(TASKS, MEMBERS[20], admission[0]))
        answers_by_user = {state.user_id: state.status for state in api.join_requests.values()}
        assert all(answers_by_user[u] == "approved" for u in RESPONDERS)
        assert answers_by_user[MEMBERS[20]] == "declined"
        assert h.last_text(MEMBERS[20]) == CATALOG.text(
            "en" if MEMBERS[20] % 3 == 0 else "es" if MEMBERS[20] % 3 == 1 else "zh-CN",
            "admission.refused",
        )
        stages = {tg: (await members_of(h.store))[by_tg[tg]].stage for tg in MEMBERS}
        assert {tg for tg, s in stages.items() if s >= Stage.ADMITTED} == set(RESPONDERS)

        # Telegram then reports each approved member's arrival in the task group: known
        # already, nothing changes and nobody is welcomed twice.
        arrivals = [
            u
            for u in api.pending_updates()
            if "chat_member" in u and u["chat_member"]["chat"]["id"] == TASKS
        ]
        arrived = {u["chat_member"]["new_chat_member"]["user"]["id"] for u in arrivals}
        assert arrived == set(RESPONDERS)
        told = {tg: len(api.messages(tg)) for tg in RESPONDERS}
        for update in arrivals:
            await asyncio.wait_for(h.feed(update), 10)
        assert {tg: len(api.messages(tg)) for tg in RESPONDERS} == told
        again = {tg: (await members_of(h.store))[by_tg[tg]].stage for tg in MEMBERS}
        assert again == stages

        # Restraint: under Telegram's limits all week, and the group saw no replies to "1".
        assert api.too_many_requests == 0
        assert len(api.calls_of("setMessageReaction")) == len(RESPONDERS)


async def _ref(h: Harness, telegram_id: int) -> int:
    async with h.store.transaction() as tx:
        ref = await tx.users.by_telegram(telegram_id)
    assert ref is not None
    return ref.user_id
