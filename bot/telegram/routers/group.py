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

from bot.telegram.raw import WRITTEN, Said, Sender
from bot.telegram.routers.filters import Migrated, PersonInGroup
from bot.telegram.services import Services
from funnels.kernel.records import CohortRecord
from funnels.warmup.replies import RecordReply

log = logging.getLogger("funnelbot.bot")
ACTIVE = ("running", "paused")  # a paused cohort still counts its members' chatter


async def migrated(message: Message, services: Services) -> None:
    assert message.migrate_to_chat_id is not None
    await services.migrated(message.chat.id, message.migrate_to_chat_id)


async def member_message(message: Message, services: Services, event_update: Update) -> None:
    """A group message that came through aiogram's models (the raw reading declined it,
    or it was fed parsed): read into the same :class:`Said` and handled alike."""
    assert message.from_user is not None
    if message.text is not None:
        if message.text.startswith("/"):
            raise SkipHandler  # a command: the leader router answers it
    elif not any(getattr(message, name) is not None for name in WRITTEN):
        return  # a service message
    user = message.from_user
    sender = Sender(user.id, user.full_name, user.language_code)
    said = Said(event_update.update_id, message.chat.id, message.message_id, sender, message.text)
    await chatter(said, services)


async def chatter(said: Said, services: Services) -> None:
    """Counted (never stored), a "1" during the pitch recorded and acknowledged, slow
    mode kept. Called by the dispatcher straight from the raw update (``read_said``) or
    by :func:`member_message`."""
    chat_id, user = said.chat_id, said.sender
    cohort = await services.chats.cohort(chat_id)
    if cohort is None or not cohort.warms_up_in(chat_id) or cohort.status not in ACTIVE:
        return
    if user.id not in services.settings.admin_ids and await services.slow_mode.too_soon(
        chat_id, user.id
    ):
        with contextlib.suppress(TelegramAPIError):
            await services.bot.delete_message(chat_id, said.message_id)
        return
    await _answer(said, cohort, services)
    # Counted last: the update is marked handled with the counts it adds to (bot/telegram/inbox.py),
    # so it must not be counted if the answer above failed and will be handled again.
    services.activity.add(chat_id, user.id, said.update_id)


async def _answer(said: Said, cohort: CohortRecord, services: Services) -> None:
    """A "1" during the pitch: recorded, and acknowledged with a reaction."""
    text, chat_id, user = said.text, said.chat_id, said.sender
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
        await services.messenger.react(chat_id, said.message_id)


def make_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="group")
    router.message.register(migrated, Migrated())
    router.message.register(member_message, PersonInGroup())
    return router
