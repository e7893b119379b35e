"""Who asks, end to end: a command costs one lookup of the person asking, group chatter
none; a command nobody can be told apart behind (an anonymous group admin, a message
with no sender) is ignored: no answer, no change, no user made of a stand-in account."""

from __future__ import annotations

from typing import Any

import pytest

from bot.telegram.services import Person
from storage.uow import SqlStore
from tests.botapi.model import GROUP_ANONYMOUS_BOT
from tests.support.harness import (
    ADMIN,
    LEADER,
    WARMUP,
    Harness,
    at,
    launch,
    running_bot,
    setup_world,
)

STRANGER = 777  # in the warm-up group from the start, never seen by the bot


def lookups(h: Harness, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The Telegram ids the user directory is asked about from now on."""
    asked: list[int] = []
    get = h.services.users.get

    async def counted(user: Person) -> tuple[int, str]:
        asked.append(user.id)
        return await get(user)

    monkeypatch.setattr(h.services.users, "get", counted)
    return asked


async def test_a_command_costs_one_lookup_and_group_chatter_none(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        setup_world(h)
        await launch(h)
        await h.run_until(at(1, "10:00"))
        asked = lookups(h, monkeypatch)

        await h.say(WARMUP, LEADER, "/status")
        await h.say(ADMIN, ADMIN, "/help")
        assert asked == [LEADER, ADMIN]

        asked.clear()
        await h.feed_parsed(h.api.say(WARMUP, STRANGER, "good morning"))  # aiogram's way
        await h.feed(h.api.say(WARMUP, STRANGER, "thanks"))  # the raw fast path
        assert h.services.activity.counts[WARMUP][STRANGER] == 2
        assert asked == []


def on_behalf_of_the_group(update: dict[str, Any]) -> dict[str, Any]:
    message = update["message"]
    message["from"] = dict(GROUP_ANONYMOUS_BOT)
    message["sender_chat"] = {"id": WARMUP, "type": "supergroup", "title": "Spring line"}
    return update


def without_sender(update: dict[str, Any]) -> dict[str, Any]:
    del update["message"]["from"]
    return update


async def test_a_command_with_no_person_behind_it_is_ignored(store: SqlStore) -> None:
    async with running_bot(store, at(0, "10:00")) as h:
        setup_world(h)
        await launch(h)
        await h.run_until(at(1, "10:00"))
        async with h.store.transaction() as tx:
            cohort = await tx.cohorts.by_chat(WARMUP)
        assert cohort is not None and cohort.status == "running"
        posted = len(h.api.messages(WARMUP))

        for text in ("/status", "/pause", "/launch"):
            for disguise in (on_behalf_of_the_group, without_sender):
                # Fed like any update: an exception in a handler would come out here.
                await h.feed(disguise(h.api.say(WARMUP, LEADER, text)))

        assert len(h.api.messages(WARMUP)) == posted  # nothing answered
        async with h.store.transaction() as tx:
            assert await tx.users.by_telegram(GROUP_ANONYMOUS_BOT["id"]) is None
            after = await tx.cohorts.by_chat(WARMUP)
        assert after is not None and after.status == "running"  # /pause paused nothing

        await h.say(WARMUP, LEADER, "/status")  # the leader as themself is answered
        assert len(h.api.messages(WARMUP)) == posted + 1
