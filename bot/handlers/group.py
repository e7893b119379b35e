"""What members write in a warm-up group: counted (never stored), a "1" during the pitch
recorded and acknowledged with a reaction, slow mode kept during talks; and a group's
move to a supergroup followed."""

from __future__ import annotations

import contextlib
import logging

from aiogram import Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, Update

from bot.handlers.filters import Migrated, PersonInGroup
from bot.services import Services
from funnels.members import RecordReply
from funnels.ports import CohortRecord

log = logging.getLogger("funnelbot.bot")
ACTIVE = ("running", "paused")  # a paused cohort still counts its members' chatter
# What a person writes, as opposed to the service messages Telegram posts in their name
# ("joined the group", "left", "pinned a message"…), which are not taking part.
WRITTEN = (
    "text",
    "photo",
    "video",
    "animation",
    "audio",
    "voice",
    "video_note",
    "document",
    "sticker",
    "contact",
    "location",
    "venue",
    "poll",
    "dice",
    "story",
)


async def migrated(message: Message, services: Services) -> None:
    assert message.migrate_to_chat_id is not None
    await services.migrated(message.chat.id, message.migrate_to_chat_id)


async def member_message(message: Message, services: Services, event_update: Update) -> None:
    assert message.from_user is not None
    if message.text is not None:
        if message.text.startswith("/"):
            raise SkipHandler  # a command: the leader router answers it
    elif not any(getattr(message, name) is not None for name in WRITTEN):
        return  # a service message
    chat_id = message.chat.id
    cohort = await services.chats.cohort(chat_id)
    if cohort is None or cohort.warmup_chat_id != chat_id or cohort.status not in ACTIVE:
        return
    user = message.from_user
    if services.slow_mode.too_soon(chat_id, user.id) and user.id not in services.settings.admin_ids:
        with contextlib.suppress(TelegramAPIError):
            await services.bot.delete_message(chat_id, message.message_id)
        return
    await _answer(message, cohort, services)
    # Counted last: the update is marked handled with the counts it adds to (bot.inbox),
    # so it must not be counted if the answer above failed and will be handled again.
    services.activity.add(chat_id, user.id, event_update.update_id)


async def _answer(message: Message, cohort: CohortRecord, services: Services) -> None:
    """A "1" during the pitch: recorded, and acknowledged with a reaction."""
    assert message.from_user is not None
    text, chat_id, user = message.text, message.chat.id, message.from_user
    if text is None or cohort.pitch_closed_at is not None:
        return
    if not services.deps.scripts.matcher(cohort)(text):
        return  # ordinary chat: only counted
    # Whether the pitch window is open is decided by RecordReply from the database (the
    # cached cohort may not know yet that the pitch went out).
    if (chat_id, user.id) in services.replied:
        return  # answered before: counted once, acknowledged once
    user_id, _ = await services.users.get(user)
    outcome = await RecordReply(services.deps)(chat_id, user_id, text, cohort=cohort)
    if outcome in ("recorded", "already"):
        services.replied.add((chat_id, user.id))
    if outcome == "recorded":
        await services.messenger.react(chat_id, message.message_id)


def make_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="group")
    router.message.register(migrated, Migrated())
    router.message.register(member_message, PersonInGroup())
    return router
