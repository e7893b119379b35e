"""What the Telegram handlers share: the engine's use cases, the catalogue, and the small
in-process caches that keep a busy group from costing a database query per message.

Built once by :func:`build_services`; handlers receive it as ``services`` through
aiogram's dependency injection.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from aiogram import Bot
from aiogram.types import InlineKeyboardMarkup, User

from bot.settings import Settings
from bot.telegram.batching import ActivityBuffer, TapBatcher
from bot.telegram.direct_api import DirectBotAPI
from bot.telegram.i18n import Catalog, negotiate
from bot.telegram.messenger import TelegramMessenger
from bot.telegram.render import Renderer
from bot.telegram.shared_throttle import SharedThrottle
from bot.telegram.slowmode import SlowModes
from bot.telegram.throttle import Throttling
from funnels.cohorts.lifecycle import FollowMigration
from funnels.cohorts.status import CohortOfChat
from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.records import CohortRecord, UpdateBatch
from funnels.ladder.progress import TaskLinkFor
from funnels.people.users import MeetUser
from funnels.warmup.chatter import RecordChatter

log = logging.getLogger("funnelbot.bot")


class ChatDirectory:
    """Which cohort runs in a chat, remembered for ``ttl`` seconds (a group's messages
    would otherwise each look it up). Use cases that change the answer forget it."""

    def __init__(self, find: CohortOfChat, ttl: float = 30.0) -> None:
        self.find = find
        self.ttl = ttl
        self._known: dict[int, tuple[float, CohortRecord | None]] = {}

    async def cohort(self, chat_id: int) -> CohortRecord | None:
        hit = self._known.get(chat_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        cohort = await self.find(chat_id)
        self._known[chat_id] = (now + self.ttl, cohort)
        return cohort

    def forget(self, *chat_ids: int | None) -> None:
        for chat_id in chat_ids:
            if chat_id is not None:
                self._known.pop(chat_id, None)


class Person(Protocol):
    """Who a Telegram update is from: aiogram's ``User``, or a tap read from raw JSON."""

    @property
    def id(self) -> int: ...
    @property
    def full_name(self) -> str: ...
    @property
    def language_code(self) -> str | None: ...


class UserDirectory:
    """Telegram id -> (user id, locale), for the hot paths (taps, "1" replies)."""

    def __init__(self, meet: MeetUser, size: int = 200_000) -> None:
        self.meet = meet
        self.size = size
        self._known: OrderedDict[int, tuple[int, str]] = OrderedDict()

    async def get(self, user: Person) -> tuple[int, str]:
        hit = self._known.get(user.id)
        if hit is not None:
            return hit
        ref = await self.meet(Actor(user.id, user.full_name, user.language_code))
        value = (ref.user_id, negotiate(ref.language))
        self.remember(user.id, *value)
        return value

    def remember(self, telegram_id: int, user_id: int, locale: str) -> None:
        self._known[telegram_id] = (user_id, locale)
        self._known.move_to_end(telegram_id)
        while len(self._known) > self.size:
            self._known.popitem(last=False)


@dataclass
class Services:
    settings: Settings
    deps: Deps
    bot: Bot
    catalog: Catalog
    renderer: Renderer
    messenger: TelegramMessenger
    throttle: Throttling
    slow_mode: SlowModes
    chats: ChatDirectory
    users: UserDirectory
    taps: TapBatcher
    direct: DirectBotAPI
    activity: ActivityBuffer = field(default_factory=ActivityBuffer)
    replied: set[tuple[int, int]] = field(default_factory=set)
    """(chat, Telegram user) whose "1" is recorded: their next "1" needs no lookup."""
    task_link: TaskLinkFor | None = None
    """A member's tracked link for a task, shown with its how-to (none when unset)."""

    def is_admin(self, telegram_id: int) -> bool:
        return telegram_id in self.settings.admin_ids

    def text(self, locale: str, key: str, /, **params: object) -> str:
        return self.catalog.text(locale, key, **params)

    async def locale(self, user: User | None) -> str:
        if user is None:
            return "en"
        return (await self.users.get(user))[1]

    @staticmethod
    def actor(user: User) -> Actor:
        return Actor(user.id, user.full_name, user.language_code)

    async def say(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        keyboard: InlineKeyboardMarkup | None = None,
    ) -> None:
        """A reply from a command handler: through the throttle like any other send."""
        try:
            async with self.throttle.slot(chat_id):
                await self.bot.send_message(
                    chat_id, text[:4096], reply_to_message_id=reply_to, reply_markup=keyboard
                )
        except Exception as exc:  # a reply that cannot go out is logged, never fatal
            log.warning("reply in %s failed: %s", chat_id, exc)

    async def edit_buttons(
        self,
        chat_id: int,
        message_id: int,
        *,
        keyboard: InlineKeyboardMarkup | None = None,
        caption: str | None = None,
    ) -> None:
        """Change the buttons (and, if given, the caption) of one of the bot's messages
        after a tap: through the throttle like a send, since edits count against the same
        limits. A failed edit is logged, never fatal (the tap was answered)."""
        try:
            async with self.throttle.slot(chat_id):
                if caption is None:
                    await self.bot.edit_message_reply_markup(
                        chat_id=chat_id, message_id=message_id, reply_markup=keyboard
                    )
                else:
                    await self.bot.edit_message_caption(
                        chat_id=chat_id,
                        message_id=message_id,
                        caption=caption[:1024],
                        reply_markup=keyboard,
                    )
        except Exception as exc:
            log.warning("edit of %s in %s failed: %s", message_id, chat_id, exc)

    async def close(self) -> None:
        """Close the connections to the Bot API server (aiogram's and the direct ones)
        and to Redis."""
        await self.direct.close()
        await self.bot.session.close()
        if isinstance(self.throttle, SharedThrottle):
            await self.throttle.close()

    async def flush_activity(self) -> int:
        """Write the buffered message counts; returns how many members were counted."""
        record = RecordChatter(self.deps)
        counted = 0
        for chat_id, counts, update_ids in self.activity.take():
            source = UpdateBatch(self.bot.id, tuple(update_ids)) if update_ids else None
            try:
                counted += await record(chat_id, counts, source)
            except Exception:
                log.exception("could not record activity in %s; counts put back", chat_id)
                self.activity.put_back(chat_id, counts, update_ids)
            else:
                self.activity.written(update_ids)
        return counted

    async def migrated(self, old_chat_id: int, new_chat_id: int) -> None:
        moved = await FollowMigration(self.deps)(old_chat_id, new_chat_id)
        self.chats.forget(old_chat_id, new_chat_id)
        await self.slow_mode.move(old_chat_id, new_chat_id)
        if moved:
            log.info("cohorts %s followed chat %s to %s", moved, old_chat_id, new_chat_id)
