"""Putting the Telegram side together: the aiogram ``Bot`` pointed at the configured
Bot API server, the dispatcher with our routers, and the command menus."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeDefault,
)

from bot.settings import Settings
from bot.telegram.i18n import SUPPORTED, Catalog
from bot.telegram.raw import read_said
from bot.telegram.routers import include
from bot.telegram.routers.envelopes import grab, read_tap
from bot.telegram.routers.group import chatter
from bot.telegram.services import Services

PRIVATE_COMMANDS = ("start", "tasks", "balance", "mylink", "join", "lang", "help")
GROUP_ADMIN_COMMANDS = (
    "launch",
    "taskgroup",
    "status",
    "pause",
    "resume",
    "grant_leader",
    "retry",
    "skip",
    "talk",
)

# Telegram keys command menus by two-letter language code; "" is the default menu.
_MENU_LANGUAGE = {"en": "", "es": "es", "zh-CN": "zh"}


def build_bot(settings: Settings) -> Bot:
    if settings.bot_token is None:
        raise ValueError("FUNNELBOT_BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(settings.bot_token.get_secret_value(), session=session)


class FunnelDispatcher(Dispatcher):
    """aiogram's dispatcher, except that a tap on a red envelope and a person's message
    in a group are read straight from the raw update and handled without building
    aiogram's models (:mod:`bot.telegram.raw`): a crowd's taps and a group's chatter are
    the hottest paths, and the models cost more than handling them. Polling
    (:mod:`bot.telegram.polling`) and the webhook both feed raw updates."""

    def __init__(self, services: Services) -> None:
        super().__init__(disable_fsm=True)  # no handler keeps conversation state
        self["services"] = services
        self._services = services
        include(self)

    async def feed_raw_update(self, bot: Bot, update: dict[str, Any], **kwargs: Any) -> Any:
        tap = read_tap(update)
        if tap is not None:
            await grab(tap, self._services)
            return None
        said = read_said(update)
        if said is not None:
            await chatter(said, self._services)
            return None
        return await super().feed_raw_update(bot, update, **kwargs)


def build_dispatcher(services: Services) -> FunnelDispatcher:
    return FunnelDispatcher(services)


def allowed_updates(dp: Dispatcher) -> list[str]:
    """What the routers handle; ``chat_member`` must be asked for explicitly."""
    return sorted(set(dp.resolve_used_update_types()) | {"chat_member", "my_chat_member"})


async def register_commands(bot: Bot, catalog: Catalog) -> None:
    """The command menus per scope and language (``setMyCommands``)."""
    for locale in SUPPORTED:
        language = _MENU_LANGUAGE[locale] or None
        private = [
            BotCommand(command=name, description=catalog.text(locale, f"cmd.{name}"))
            for name in PRIVATE_COMMANDS
        ]
        group = [
            BotCommand(command=name, description=catalog.text(locale, f"cmd.{name}"))
            for name in GROUP_ADMIN_COMMANDS
        ]
        await bot.set_my_commands(
            private, scope=BotCommandScopeAllPrivateChats(), language_code=language
        )
        await bot.set_my_commands(
            group, scope=BotCommandScopeAllChatAdministrators(), language_code=language
        )
        await bot.set_my_commands(
            private[:1] + private[-1:], scope=BotCommandScopeDefault(), language_code=language
        )
