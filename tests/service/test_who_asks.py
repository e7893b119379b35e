"""Who is asking, worked out once per update by ``WhoAsks``: the handler gets the actor,
the admin flag and (only if it takes it) the locale; an update with no person behind it
reaches no handler. Fed through a real aiogram dispatcher; nothing leaves the process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message, Update, User

from bot.telegram.routers.middleware import WhoAsks
from bot.telegram.services import Services
from funnels.kernel.actor import Actor

ADMIN, MEMBER = 900, 61
GROUP = {"id": -1001, "type": "supergroup", "title": "Warm-up"}
GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel"}


class FakeServices:
    """The three things WhoAsks asks of ``Services``, with the locale lookups recorded."""

    actor = staticmethod(Services.actor)

    def __init__(self) -> None:
        self.looked_up: list[int] = []

    def is_admin(self, telegram_id: int) -> bool:
        return telegram_id == ADMIN

    async def locale(self, user: User | None) -> str:
        assert user is not None
        self.looked_up.append(user.id)
        return "es" if user.language_code == "es" else "en"


class Seen:
    """What the handlers were given, one dict per call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []


def dispatcher(seen: Seen) -> Dispatcher:
    router = Router()
    router.message.middleware(WhoAsks())
    router.callback_query.middleware(WhoAsks())

    async def status(message: Message, actor: Actor, locale: str, is_admin: bool) -> None:
        seen.calls.append({"actor": actor, "locale": locale, "is_admin": is_admin})

    async def tapped(query: CallbackQuery, actor: Actor, is_admin: bool) -> None:
        seen.calls.append({"actor": actor, "is_admin": is_admin})

    router.message.register(status, Command("status"))
    router.callback_query.register(tapped)
    dp = Dispatcher(disable_fsm=True)
    dp.include_router(router)
    return dp


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    bot = Bot("42:TEST")
    yield bot
    await bot.session.close()


def person(user_id: int, name: str, language: str | None = None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": name}
    if language is not None:
        user["language_code"] = language
    return user


def message(sender: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"message_id": 5, "date": 0, "chat": GROUP, "text": "/status"}
    body["entities"] = [{"type": "bot_command", "offset": 0, "length": 7}]
    if sender is not None:
        body["from"] = sender
    return {"update_id": 1, "message": {**body, **extra}}


async def feed(bot: Bot, raw: dict[str, Any]) -> tuple[Seen, FakeServices]:
    seen, services = Seen(), FakeServices()
    await dispatcher(seen).feed_update(
        bot, Update.model_validate(raw, context={"bot": bot}), services=services
    )
    return seen, services


async def test_a_command_gets_who_asks_with_one_locale_lookup(bot: Bot) -> None:
    seen, services = await feed(bot, message(person(MEMBER, "Ana", "es")))
    assert seen.calls == [{"actor": Actor(MEMBER, "Ana", "es"), "locale": "es", "is_admin": False}]
    assert services.looked_up == [MEMBER]


async def test_a_bootstrap_admin_is_told_apart(bot: Bot) -> None:
    seen, _ = await feed(bot, message(person(ADMIN, "Ada")))
    assert seen.calls == [{"actor": Actor(ADMIN, "Ada"), "locale": "en", "is_admin": True}]


async def test_a_handler_that_takes_no_locale_costs_no_lookup(bot: Bot) -> None:
    tap = {
        "update_id": 2,
        "callback_query": {
            "id": "77",
            "from": person(ADMIN, "Ada"),
            "chat_instance": "1",
            "data": "lang:es",
        },
    }
    seen, services = await feed(bot, tap)
    assert seen.calls == [{"actor": Actor(ADMIN, "Ada"), "is_admin": True}]
    assert services.looked_up == []


@pytest.mark.parametrize(
    ("sender", "extra"),
    [
        pytest.param(None, {}, id="no sender at all"),
        pytest.param(GROUP_ANONYMOUS_BOT, {"sender_chat": GROUP}, id="anonymous group admin"),
        pytest.param(
            CHANNEL_BOT,
            {"sender_chat": {"id": -1002, "type": "channel", "title": "News"}},
            id="posted as a channel",
        ),
        pytest.param(
            person(ADMIN, "Ada"),
            {"sender_chat": {"id": -1002, "type": "channel", "title": "News"}},
            id="on behalf of a chat, whoever is named",
        ),
    ],
)
async def test_a_message_with_no_person_behind_it_reaches_no_handler(
    bot: Bot, sender: dict[str, Any] | None, extra: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="funnelbot.bot"):
        seen, services = await feed(bot, message(sender, **extra))
    assert seen.calls == []
    assert services.looked_up == []  # nobody is made a user of
    assert "Message without a person behind it ignored" in caplog.text
