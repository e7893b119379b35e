"""The :class:`funnels.kernel.messaging.Messenger` over Telegram, through aiogram's HTTP client.

Every send and edit passes the throttle (:mod:`bot.telegram.throttle`) first, so the bot keeps
under Telegram's flood limits instead of bouncing off them; a 429 that comes back anyway
is waited out and the call repeated (Telegram did nothing, so repeating is safe). Errors
become the domain's: a group that is gone or forbids posting is :class:`ChatUnavailable`
(the engine pauses the cohort), a timeout is a ``DeliveryError`` of unknown outcome
(never re-sent on its own), no connection to the Bot API at all is
:class:`BotApiUnreached` (nothing left: the step stays due), a member who blocked the
bot is marked unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Message, ReactionTypeEmoji
from aiohttp import ClientConnectorError

from bot import metrics
from bot.telegram.render import Rendered, Renderer
from bot.telegram.rights import lacking
from bot.telegram.slowmode import SlowMode, SlowModes
from bot.telegram.throttle import Throttling
from funnels.kernel.messaging import (
    AdmissionsOpen,
    BotApiUnreached,
    ChatUnavailable,
    DeliveryError,
    Outgoing,
    Right,
)
from funnels.kernel.records import MemberRef

log = logging.getLogger("funnelbot.telegram")

T = TypeVar("T")


class TelegramMessenger:
    def __init__(
        self,
        bot: Bot,
        renderer: Renderer,
        throttle: Throttling,
        *,
        slow_mode: SlowModes | None = None,
        on_migrated: Callable[[int, int], Awaitable[None]] | None = None,
        on_unreachable: Callable[[int], Awaitable[None]] | None = None,
        max_waits: int = 5,
    ) -> None:
        self.bot = bot
        self.render = renderer
        self.throttle = throttle
        self.slow_mode: SlowModes = slow_mode or SlowMode()
        self.on_migrated = on_migrated
        self.on_unreachable = on_unreachable
        self.max_waits = max_waits
        self.too_many_requests = 0
        """429s received (the throttle should keep this at zero)."""

    # ------------------------------------------------------------ the Messenger port

    async def send(self, chat_id: int, message: Outgoing, *, pin: bool = False) -> int:
        if isinstance(message, AdmissionsOpen) and message.start_payload:
            message = replace(message, join_link=await self._start_link(message.start_payload))
        rendered = self.render(message)
        sent = await self._group_call(chat_id, lambda chat: self._post(chat, rendered))
        if pin:
            try:
                await self._call(
                    sent.chat.id,
                    lambda: self.bot.pin_chat_message(
                        sent.chat.id, sent.message_id, disable_notification=True
                    ),
                    throttled=False,
                )
            except DeliveryError as exc:
                # The post is out; a missing pin is not worth failing the step for.
                log.warning("could not pin message %s in %s: %s", sent.message_id, chat_id, exc)
        return sent.message_id

    async def edit(self, chat_id: int, message_id: int, message: Outgoing) -> None:
        rendered = self.render(message)

        async def edit(chat: int) -> None:
            try:
                if rendered.media is None:
                    await self.bot.edit_message_text(
                        text=rendered.text,
                        chat_id=chat,
                        message_id=message_id,
                        reply_markup=rendered.keyboard,
                    )
                else:
                    await self.bot.edit_message_caption(
                        chat_id=chat,
                        message_id=message_id,
                        caption=rendered.text,
                        reply_markup=rendered.keyboard,
                    )
            except TelegramBadRequest as exc:
                if "not modified" not in exc.message:
                    raise

        await self._group_call(chat_id, edit)

    async def set_slow_mode(self, chat_id: int, seconds: int) -> None:
        # The Bot API cannot set Telegram's own slow mode; the bot keeps it itself by
        # deleting messages a member sends faster than this (see bot/telegram/slowmode.py).
        await self.slow_mode.set(chat_id, seconds)

    async def unpin(self, chat_id: int, message_id: int) -> None:
        with contextlib.suppress(DeliveryError):
            await self._call(
                chat_id,
                lambda: self.bot.unpin_chat_message(chat_id, message_id=message_id),
                throttled=False,
            )

    async def notify(self, member: MemberRef, message: Outgoing) -> bool:
        if member.telegram_id is None:
            return False
        rendered = self.render(message)
        chat = member.telegram_id
        try:
            await self._call(chat, lambda: self._post(chat, rendered))
        except ChatUnavailable:
            if self.on_unreachable is not None:
                await self.on_unreachable(chat)
            return False
        except DeliveryError as exc:
            log.info("private message to %s not delivered: %s", chat, exc)
            return False
        return True

    async def react(self, chat_id: int, message_id: int) -> None:
        # Not a message: outside the bulk throttle, and a lost reaction is harmless.
        with contextlib.suppress(TelegramAPIError):
            await self.bot.set_message_reaction(
                chat_id, message_id, reaction=[ReactionTypeEmoji(emoji="👍")]
            )

    async def missing_rights(self, chat_id: int, needs: Sequence[Right]) -> list[Right]:
        try:
            me = await self.bot.get_chat_member(chat_id, self.bot.id)
        except TelegramAPIError:
            return list(needs)  # not in the chat (or it is gone): nothing is there
        return lacking(me, needs)

    async def create_invite_link(
        self,
        chat_id: int,
        name: str,
        *,
        join_request: bool = False,
        member_limit: int | None = None,
        expire_at: datetime | None = None,
    ) -> str:
        link = await self._call(
            chat_id,
            lambda: self.bot.create_chat_invite_link(
                chat_id,
                name=name[:32],
                creates_join_request=join_request or None,
                member_limit=member_limit,
                expire_date=expire_at,
            ),
            throttled=False,
        )
        return link.invite_link

    async def revoke_invite_link(self, chat_id: int, link: str) -> None:
        await self._call(
            chat_id, lambda: self.bot.revoke_chat_invite_link(chat_id, link), throttled=False
        )

    async def remove_member(self, chat_id: int, telegram_id: int) -> bool:
        # Telegram has no "remove": a ban takes them out, the unban at once lets them
        # come back later by a link that is theirs.
        try:
            await self._call(
                chat_id, lambda: self.bot.ban_chat_member(chat_id, telegram_id), throttled=False
            )
        except DeliveryError as exc:
            log.warning("could not remove %s from %s: %s", telegram_id, chat_id, exc)
            return False
        try:
            await self._call(
                chat_id,
                lambda: self.bot.unban_chat_member(chat_id, telegram_id, only_if_banned=True),
                throttled=False,
            )
        except DeliveryError as exc:
            log.warning("%s stays banned from %s: the unban failed: %s", telegram_id, chat_id, exc)
        return True

    async def answer_join_request(self, chat_id: int, telegram_id: int, *, approve: bool) -> bool:
        method = (
            self.bot.approve_chat_join_request if approve else self.bot.decline_chat_join_request
        )
        try:
            return bool(
                await self._call(chat_id, lambda: method(chat_id, telegram_id), throttled=False)
            )
        except DeliveryError as exc:
            log.info("join request of %s in %s: %s", telegram_id, chat_id, exc)
            return "USER_ALREADY_PARTICIPANT" in exc.reason

    async def member_count(self, chat_id: int) -> int:
        return await self._call(
            chat_id, lambda: self.bot.get_chat_member_count(chat_id), throttled=False
        )

    async def leave(self, chat_id: int) -> None:
        try:
            await self._call(chat_id, lambda: self.bot.leave_chat(chat_id), throttled=False)
        except DeliveryError as exc:  # already gone: nothing to leave
            log.info("leaving %s: %s", chat_id, exc)

    # ------------------------------------------------------------ plumbing

    async def _start_link(self, payload: str) -> str | None:
        """``https://t.me/<bot>?start=<payload>``: a button into the bot's private chat.
        None (no button) when the bot's username cannot be had."""
        try:
            me = await self._call(0, self.bot.me, throttled=False)  # cached after the first
        except DeliveryError as exc:
            log.warning("no username for a start link: %s", exc)
            return None
        return f"https://t.me/{me.username}?start={payload}" if me.username else None

    async def _post(self, chat_id: int, rendered: Rendered) -> Message:
        media = rendered.media
        if media is None:
            return await self.bot.send_message(
                chat_id, rendered.text, reply_markup=rendered.keyboard
            )
        send: Any = {
            "photo": self.bot.send_photo,
            "video": self.bot.send_video,
            "document": self.bot.send_document,
        }[media.kind]
        caption = rendered.text if len(rendered.text) <= 1024 else None
        sent: Message = await send(
            chat_id, media.ref, caption=caption, reply_markup=rendered.keyboard
        )
        if caption is None:  # a long text goes on its own, after the media
            sent = await self.bot.send_message(chat_id, rendered.text)
        return sent

    async def _group_call(self, chat_id: int, call: Callable[[int], Awaitable[T]]) -> T:
        """A throttled call into a chat that follows the chat if it became a supergroup."""
        try:
            return await self._call(chat_id, lambda: call(chat_id))
        except _Migrated as moved:
            new_chat_id = moved.new_chat_id
        if self.on_migrated is not None:
            await self.on_migrated(chat_id, new_chat_id)
        return await self._call(new_chat_id, lambda: call(new_chat_id))

    async def _call(
        self, chat_id: int, call: Callable[[], Awaitable[T]], *, throttled: bool = True
    ) -> T:
        try:
            result = await self._calling(chat_id, call, throttled=throttled)
        except ChatUnavailable:
            metrics.SENDS.labels("unavailable").inc()
            raise
        except BotApiUnreached:
            metrics.SENDS.labels("unreached").inc()
            raise
        except DeliveryError as failed:
            metrics.SENDS.labels("refused" if failed.definite else "unknown").inc()
            raise
        metrics.SENDS.labels("ok").inc()
        return result

    async def _calling(
        self, chat_id: int, call: Callable[[], Awaitable[T]], *, throttled: bool
    ) -> T:
        for _ in range(self.max_waits + 1):
            try:
                if throttled:
                    async with self.throttle.slot(chat_id):
                        return await call()
                return await call()
            except TelegramRetryAfter as exc:
                self.too_many_requests += 1
                metrics.TOO_MANY_REQUESTS.inc()
                log.warning("429 in chat %s: waiting %ss", chat_id, exc.retry_after)
                self.throttle.back_off(chat_id, exc.retry_after)
                if not throttled:
                    await asyncio.sleep(exc.retry_after)
            except TelegramMigrateToChat as exc:
                raise _Migrated(exc.migrate_to_chat_id) from None
            except TelegramForbiddenError as exc:
                gone = "kicked" in exc.message or "not a member" in exc.message
                raise ChatUnavailable(exc.message, "removed" if gone else "cannot_post") from None
            except TelegramBadRequest as exc:
                text = exc.message
                if "not enough rights" in text or "have no rights" in text:
                    raise ChatUnavailable(text, "demoted") from None
                if "chat not found" in text:
                    raise ChatUnavailable(text, "removed") from None
                raise DeliveryError(text, definite=True) from None
            except TelegramNotFound as exc:
                raise DeliveryError(exc.message, definite=True) from None
            except (
                TimeoutError,
                TelegramNetworkError,
                TelegramServerError,
                ClientDecodeError,
            ) as exc:
                if isinstance(exc.__cause__, ClientConnectorError):
                    # No connection was made (DNS, refused, TLS): the request never left.
                    raise BotApiUnreached(f"{type(exc).__name__}: {exc}") from None
                # The request may or may not have reached Telegram: outcome unknown. An
                # answer that is not the Bot API's JSON (a proxy's error page) says no more.
                raise DeliveryError(f"{type(exc).__name__}: {exc}", definite=False) from None
            except TelegramAPIError as exc:
                raise DeliveryError(exc.message, definite=True) from None
        raise DeliveryError(f"still rate limited after {self.max_waits} waits", definite=True)


class _Migrated(Exception):
    def __init__(self, new_chat_id: int) -> None:
        super().__init__(new_chat_id)
        self.new_chat_id = new_chat_id
