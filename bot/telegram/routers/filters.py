"""Filters for the routers, as ``Filter`` classes with async checks.

aiogram runs a plain callable filter (a magic ``F`` expression included) in a worker
thread; for a check this small the thread hop costs far more than the check, on every
group message. These are awaited in the event loop instead.
"""

from __future__ import annotations

from typing import Any

from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, Message
from pydantic import ValidationError

from bot.telegram.render import Grab

_GROUP_TYPES = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})


class InGroup(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.chat.type in _GROUP_TYPES


class InPrivate(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.chat.type == ChatType.PRIVATE


class Migrated(Filter):
    """The service message of a group that became a supergroup."""

    async def __call__(self, message: Message) -> bool:
        return message.migrate_to_chat_id is not None


class PersonInGroup(Filter):
    """A person's message in a group: in a group and from a person (not a bot) in one check, since
    every filter costs a call on the busiest path."""

    async def __call__(self, message: Message) -> bool:
        user = message.from_user
        return message.chat.type in _GROUP_TYPES and user is not None and not user.is_bot


class EnvelopeTap(Filter):
    """A tap on a red envelope's button (``grab:<envelope id>``); hands the handler
    ``envelope_id``. Read with string operations rather than by building the ``Grab``
    model, since a crowd's taps arrive hundreds a second."""

    _prefix = f"{Grab.__prefix__}{Grab.__separator__}"

    async def __call__(self, query: CallbackQuery) -> bool | dict[str, int]:
        envelope_id = self.envelope_of(query.data)
        return False if envelope_id is None else {"envelope_id": envelope_id}

    @classmethod
    def envelope_of(cls, data: str | None) -> int | None:
        if data is None or not data.startswith(cls._prefix):
            return None
        envelope = data[len(cls._prefix) :]
        if not (envelope.isascii() and envelope.isdigit() and len(envelope) <= 18):
            return None
        return int(envelope)


class HasPhoto(Filter):
    async def __call__(self, message: Message) -> bool:
        return bool(message.photo)


class Button(Filter):
    """A tap on one kind of our buttons (its data starts with the kind's prefix); hands
    the handler ``button``: the parsed data, or None when it does not parse (a forged or
    outdated button), so the handler can answer it rather than leave it spinning."""

    def __init__(self, kind: type[CallbackData]) -> None:
        self.kind = kind
        self.prefix = f"{kind.__prefix__}{kind.__separator__}"

    async def __call__(self, query: CallbackQuery) -> bool | dict[str, Any]:
        data = query.data
        if data is None or not data.startswith(self.prefix):
            return False
        try:
            return {"button": self.kind.unpack(data)}
        except (ValueError, TypeError, ValidationError):
            return {"button": None}
