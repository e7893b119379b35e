"""Who is asking, resolved once per update before the handler runs.

The command handlers all start from the same three facts about the person who sent the
update: who they are as the use cases see them (``actor``), whether they are a bootstrap
admin (``is_admin``), and the language to answer in (``locale``). :class:`WhoAsks` works
them out once and hands them to the handler as aiogram data, so a handler names what it
needs in its parameters instead of looking it up.

The locale costs a lookup (the member's chosen language is in the database, though
cached after the first time), so it is resolved only for a handler that takes it.

It is an *inner* middleware: it runs after the filters chose a handler, never for an
update no handler of the router wants. It sits on the routers that answer people (the
leader and private routers), not on the group chatter router, whose handler needs none
of it, nor on the raw fast paths for taps and chatter, which never reach aiogram.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.handler import CallableObject
from aiogram.types import CallbackQuery, Message, TelegramObject, User

from bot.telegram.services import Services

log = logging.getLogger("funnelbot.bot")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def person_asking(event: TelegramObject) -> User | None:
    """The person who sent a message or tapped a button, or None when nobody can be told
    apart: a message sent on behalf of a chat (an anonymous group admin, a channel, or a
    member posting as their channel) names a stand-in account, or no one, as its sender."""
    if isinstance(event, Message):
        return None if event.sender_chat is not None else event.from_user
    if isinstance(event, CallbackQuery):
        return event.from_user
    return None


class WhoAsks(BaseMiddleware):
    """Hands the handler ``actor``, ``is_admin`` and, if it takes it, ``locale``.

    An update with no person behind it (see :func:`person_asking`) is ignored: the
    handler does not run, and nothing is answered, since there is no one to answer and
    no one whose rights could be checked."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = person_asking(event)
        if user is None:
            log.info("%s without a person behind it ignored", type(event).__name__)
            return None
        services: Services = data["services"]
        data["actor"] = services.actor(user)
        data["is_admin"] = services.is_admin(user.id)
        if _takes(data, "locale"):
            data["locale"] = await services.locale(user)
        return await handler(event, data)


def _takes(data: dict[str, Any], name: str) -> bool:
    """Whether the chosen handler has a parameter ``name`` (aiogram passes a handler only
    the data its signature names)."""
    chosen = data.get("handler")
    if not isinstance(chosen, CallableObject):
        return True  # not known: resolve it rather than leave the handler without
    return chosen.varkw or name in chosen.params
