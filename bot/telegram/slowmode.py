"""Slow mode during talks, kept by the bot itself.

The Bot API cannot switch on Telegram's own slow mode, so while a talk asks for it the
bot deletes a member's message sent sooner than ``seconds`` after their previous one
(a message deleted does not restart the member's clock). :class:`SlowMode` keeps it in
the process; :class:`SharedSlowMode` in Redis, so that with several processes behind a
load balancer a member's second message is caught whichever process receives it, and
the process that started the talk is not the only one that knows. Without Redis (or
while it cannot be reached: said once in the log) each process keeps it on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from bot.outage import RedisOutage

log = logging.getLogger("funnelbot.bot")

TALK_AT_MOST = 6 * 3600
"""Seconds after which a slow mode nobody lifted lapses in Redis (a talk is shorter)."""


class SlowModes(Protocol):
    async def set(self, chat_id: int, seconds: int) -> None:
        """Slow mode of ``seconds`` in the chat (0: off)."""
        ...

    async def too_soon(self, chat_id: int, user_id: int) -> bool:
        """Record a member's message; True when it came sooner than slow mode allows
        (the message should go; it does not reset the member's clock)."""
        ...

    async def move(self, old_chat_id: int, new_chat_id: int) -> None:
        """The group became a supergroup with a new id."""
        ...


class SlowMode:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._delay: dict[int, float] = {}
        self._last: dict[tuple[int, int], float] = {}

    async def set(self, chat_id: int, seconds: int) -> None:
        if seconds > 0:
            self._delay[chat_id] = float(seconds)
            return
        self._delay.pop(chat_id, None)
        for key in [k for k in self._last if k[0] == chat_id]:
            del self._last[key]

    def active(self, chat_id: int) -> bool:
        return chat_id in self._delay

    async def too_soon(self, chat_id: int, user_id: int) -> bool:
        delay = self._delay.get(chat_id)
        if delay is None:
            return False
        now = self._clock()
        last = self._last.get((chat_id, user_id))
        if last is not None and now - last < delay:
            return True
        self._last[(chat_id, user_id)] = now
        return False

    async def move(self, old_chat_id: int, new_chat_id: int) -> None:
        if old_chat_id in self._delay:
            self._delay[new_chat_id] = self._delay.pop(old_chat_id)


class SharedSlowMode:
    """Slow mode in Redis: ``PREFIX:chat:{id}`` holds a chat's seconds while a talk runs,
    ``PREFIX:last:{chat}:{user}`` a member's last allowed message (set only if absent,
    expiring after the seconds: one round trip a message). Whether a chat is in slow mode
    is read again at most every ``refresh`` seconds per process."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "funnelbot:slow",
        refresh: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self._prefix = prefix
        self._refresh = refresh
        self._clock = clock
        self._local = SlowMode(clock)
        self._known: dict[int, tuple[float | None, float]] = {}
        """Chat -> (its seconds, or None: not in slow mode; when that was read)."""
        self._outage = RedisOutage(
            log,
            "Redis is out of reach (%s): slow mode is kept in this process",
            "Redis answers again: slow mode is shared again",
            time_source=clock,
        )

    def _chat_key(self, chat_id: int) -> str:
        return f"{self._prefix}:chat:{chat_id}"

    async def set(self, chat_id: int, seconds: int) -> None:
        await self._local.set(chat_id, seconds)
        try:
            if seconds > 0:
                await self.redis.set(self._chat_key(chat_id), seconds, ex=TALK_AT_MOST)
            else:
                await self.redis.delete(self._chat_key(chat_id))
        except self._outage.faults as exc:
            self._outage.failed(exc)
            return
        self._known[chat_id] = (float(seconds) if seconds > 0 else None, self._clock())
        self._outage.answered()

    async def _seconds(self, chat_id: int) -> float | None:
        now = self._clock()
        known = self._known.get(chat_id)
        if known is not None and now - known[1] < self._refresh:
            return known[0]
        value = await self.redis.get(self._chat_key(chat_id))
        seconds = float(value) if value is not None else None
        self._known[chat_id] = (seconds, now)
        return seconds

    async def too_soon(self, chat_id: int, user_id: int) -> bool:
        if self._outage.skip():
            return await self._local.too_soon(chat_id, user_id)
        try:
            seconds = await self._seconds(chat_id)
            if seconds is None:
                return False
            first = await self.redis.set(
                f"{self._prefix}:last:{chat_id}:{user_id}", 1, nx=True, px=int(seconds * 1000)
            )
        except self._outage.faults as exc:
            self._outage.failed(exc)
            return await self._local.too_soon(chat_id, user_id)
        self._outage.answered()
        return not first

    async def move(self, old_chat_id: int, new_chat_id: int) -> None:
        await self._local.move(old_chat_id, new_chat_id)
        self._known.pop(old_chat_id, None)
        try:
            value = await self.redis.get(self._chat_key(old_chat_id))
            if value is not None:
                await self.redis.set(self._chat_key(new_chat_id), value, ex=TALK_AT_MOST)
                await self.redis.delete(self._chat_key(old_chat_id))
        except self._outage.faults as exc:
            self._outage.failed(exc)
