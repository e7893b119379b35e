"""Admission by personal links in Telegram, end to end: a cohort launched with
``admission=personal`` on the shipped script, run by the real bot against the local Bot
API server on a virtual clock.

launch -> task group bound (no shared link) -> pitch -> "1" -> the nudge's button into
the private chat -> each responder's one-time link (asked twice: one link) -> joins by
it -> a non-responder refused -> a link passed on to a non-responder (taken out again)
and to a responder (let in).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.telegram.i18n import Catalog
from funnels.kernel.stages import Stage
from storage.uow import SqlStore
from tests.support.harness import (
    LEADER,
    MEMBERS,
    TASKS,
    WARMUP,
    Harness,
    at,
    members_of,
    running_bot,
    setup_world,
)

CATALOG = Catalog.load()
RESPONDERS = MEMBERS[:4]
OUTSIDERS = MEMBERS[20:22]
KINDS = ["callback_query", "chat_join_request", "chat_member", "message", "my_chat_member"]


def locale_of(user_id: int) -> str:
    """The language ``setup_world`` gives a member's app."""
    return {0: "en", 1: "es", 2: "zh-CN"}[user_id % 3]


def task_links(h: Harness) -> dict[str, object]:
    return {link: s for link, s in h.api.invite_links.items() if s.chat_id == TASKS}


async def ask(h: Harness, user_id: int, text: str = "/join") -> str:
    """What the bot answers a member's ``text`` in their private chat."""
    await h.say(user_id, user_id, text)
    return h.last_text(user_id)


def link_in(text: str) -> str:
    [link] = [word for word in text.split() if word.startswith("https://t.me/+")]
    return link


async def stage_of(h: Harness, telegram_id: int) -> Stage:
    async with h.store.transaction() as tx:
        ref = await tx.users.by_telegram(telegram_id)
    assert ref is not None
    return Stage((await members_of(h.store))[ref.user_id].stage)


async def test_personal_links_in_telegram(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00"), shared_clock=True, allowed_updates=KINDS) as h:
        setup_world(h)
        api = h.api

        # Launched with personal links; the leader reads the mode back.
        await h.say(900, 900, f"/grant_leader {LEADER} SEA")
        await h.say(WARMUP, LEADER, "/launch start=2026-03-02 admission=nope")
        assert h.last_text(WARMUP) == CATALOG.text("en", "launch.bad_admission", value="nope")
        async with h.store.transaction() as tx:
            assert await tx.cohorts.by_chat(WARMUP) is None
        await h.say(WARMUP, LEADER, "/launch start=2026-03-02 admission=personal")
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(WARMUP)
        assert cohort is not None and cohort.admission == "personal"
        code = cohort.code
        mode = CATALOG.text("en", "admission.mode.personal")
        assert h.last_text(WARMUP).endswith(CATALOG.text("en", "cohort.admission", mode=mode))
        [leader_link] = [link for link, s in api.invite_links.items() if s.chat_id == WARMUP]

        # The task group gets no shared link: nobody can ask their way in.
        await h.say(TASKS, LEADER, f"/taskgroup {code}")
        assert h.last_text(TASKS) == CATALOG.text("en", "taskgroup.bound", code=code)
        assert task_links(h) == {}
        await h.say(WARMUP, LEADER, "/status")
        assert CATALOG.text("en", "cohort.admission", mode=mode) in h.last_text(WARMUP)

        for user_id in MEMBERS:
            await h.feed(api.join(WARMUP, user_id, invite_link=leader_link))

        # The pitch; responders answer, and the group's nudge leads into the private chat.
        await h.run_until(at(7, "20:45"))
        for user_id in RESPONDERS:
            await h.say(WARMUP, user_id, "1")
        sent_before = len(api.messages(WARMUP))
        await h.tick(at(7, "20:51"))
        [nudge] = api.messages(WARMUP)[sent_before:]
        button = nudge["reply_markup"]["inline_keyboard"][0][0]
        me = api.bot_user["username"]
        assert button["url"] == f"https://t.me/{me}?start=join-{code}"

        # A responder presses it: a one-time link of their own, in private.
        first = RESPONDERS[0]
        await h.feed(api.start_bot(first, f"join-{code}"))
        link = link_in(h.last_text(first))
        state = api.invite_links[link]
        assert (state.chat_id, state.member_limit, state.creates_join_request) == (
            TASKS,
            1,
            False,
        )
        expires = at(7, "20:51") + timedelta(hours=24)
        assert state.expire_date == int(expires.timestamp())
        until = CATALOG.when(locale_of(first), expires, cohort.timezone)
        assert h.last_text(first) == CATALOG.text(
            locale_of(first), "personal.link", code=code, link=link, until=until
        )
        # Asking again, by the button or by /join: the same link, no second one.
        await h.feed(api.start_bot(first, f"join-{code}"))
        assert link_in(h.last_text(first)) == link
        assert link_in(await ask(h, first)) == link
        assert list(task_links(h)) == [link]

        # Someone who did not answer "1" is refused in their language; no link is made.
        outsider = OUTSIDERS[0]
        await h.feed(api.start_bot(outsider, f"join-{code}"))
        assert h.last_text(outsider) == CATALOG.text(locale_of(outsider), "admission.refused")
        assert list(task_links(h)) == [link]

        # The responder joins by their link: admitted once, the link spent.
        await h.feed(api.join(TASKS, first, invite_link=link))
        assert await stage_of(h, first) == Stage.ADMITTED
        assert api.invite_links[link].is_revoked

        # A link passed on to someone who did not answer: they are taken out again and
        # told why; the link's owner hears of it and gets a new link when they ask.
        owner, friend = RESPONDERS[1], OUTSIDERS[1]
        await h.feed(api.start_bot(owner))
        passed = link_in(await ask(h, owner))
        await h.feed(api.start_bot(friend))
        await h.feed(api.join(TASKS, friend, invite_link=passed))
        assert api.members(TASKS)[friend].status == "left"  # banned and let go at once
        assert [c.params["user_id"] for c in api.calls_of("banChatMember")] == [friend]
        assert [c.params["user_id"] for c in api.calls_of("unbanChatMember")] == [friend]
        assert await stage_of(h, friend) < Stage.REPLIED
        assert h.last_text(friend) == CATALOG.text(
            locale_of(friend), "admission.not_yours", code=code
        )
        assert h.last_text(owner) == CATALOG.text(
            locale_of(owner), "admission.passed_on", code=code
        )
        assert api.invite_links[passed].is_revoked
        with pytest.raises(ValueError, match="revoked"):
            api.join(TASKS, friend, invite_link=passed)  # it cannot be used again
        fresh = link_in(await ask(h, owner))
        assert fresh != passed
        await h.feed(api.join(TASKS, owner, invite_link=fresh))
        assert await stage_of(h, owner) == Stage.ADMITTED

        # A link passed on to another responder lets them in: they were entitled anyway.
        giver, taker = RESPONDERS[2], RESPONDERS[3]
        await h.feed(api.start_bot(giver))
        handed = link_in(await ask(h, giver))
        await h.feed(api.join(TASKS, taker, invite_link=handed))
        assert await stage_of(h, taker) == Stage.ADMITTED
        assert await stage_of(h, giver) == Stage.REPLIED
        assert len(api.calls_of("banChatMember")) == 1

        # The bot's own removals reach it as chat_member updates: handled, nothing moves.
        stages = {tg: await stage_of(h, tg) for tg in MEMBERS}
        for update in api.pending_updates():
            if "chat_member" in update and update["chat_member"]["chat"]["id"] == TASKS:
                await h.feed(update)
        assert {tg: await stage_of(h, tg) for tg in MEMBERS} == stages
        assert api.too_many_requests == 0
