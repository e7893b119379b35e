"""Filters for the routers, as ``Filter`` classes with async checks.

aiogram runs a plain callable filter (a magic ``F`` expression included) in a worker
thread; for a check this small the thread hop costs far more than the check, on every
group message. These are awaited in the event loop instead.
"""

from __future__ import annotations

from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.types import Message

_GROUP_TYPES = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})


class InGroup(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.chat.type in _GROUP_TYPES


class InPrivate(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.chat.type == ChatType.PRIVATE


class FromPerson(Filter):
    """Sent by a person (not a bot, not on behalf of a channel)."""

    async def __call__(self, message: Message) -> bool:
        return message.from_user is not None and not message.from_user.is_bot


class Migrated(Filter):
    """The service message of a group that became a supergroup."""

    async def __call__(self, message: Message) -> bool:
        return message.migrate_to_chat_id is not None
