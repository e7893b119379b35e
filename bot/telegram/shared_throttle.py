"""Telegram's flood limits kept by several processes together, counted in Redis.

Telegram counts a bot's messages wherever they come from, so processes that share a bot
(several behind a load balancer in webhook mode) must share one count. Each send
reserves its slot in Redis with one atomic script, on Redis's own clock: the first time
at or after now when its chat's window has room (the latest ``count`` reservations in the
chat, a window apart) and no other send of the bot is within one global spacing of it
(``window length / count``, about 35 ms, the even spacing :mod:`bot.telegram.throttle` uses). The
sender then sleeps until its slot. Reservations are kept as sorted sets that expire on
their own once they can no longer count, so quiet chats cost nothing.

The limits and the margin are the in-process throttle's (:class:`bot.telegram.throttle.Limits`),
and it learns from late answers as that one does: a send whose answer came later than
the fastest recent round trip by more than the margin absorbs counts, in its chat's
window, from that much later (Telegram may have counted it only when it arrived), so the
next send into the chat waits for it in every process.

If Redis cannot be reached, sends are not held up by it: each process falls back to its
own :class:`~bot.telegram.throttle.Throttle` (logging once per outage), which keeps the per-process
limits, and goes back to Redis when it answers again (:mod:`bot.outage`: asked again every
few seconds, so a Redis that hangs delays one send in that time, not every one).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from bot.outage import RedisOutage
from bot.telegram.throttle import Limits, RoundTrips, Throttle, Window

log = logging.getLogger("funnelbot.throttle")

# KEYS: the chat's reservations, the bot's reservations.
# ARGV: chat window (s), chat count, global spacing (s), this send's id.
# Returns the seconds to wait before sending, as a string (Lua numbers become integers).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local spacing = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - window))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - spacing))
local at = now
local n = redis.call('ZCARD', KEYS[1])
if n >= count then
  local kth = redis.call('ZRANGE', KEYS[1], n - count, n - count, 'WITHSCORES')
  at = math.max(at, tonumber(kth[2]) + window)
end
local taken = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (at - spacing), '+inf', 'WITHSCORES')
for i = 2, #taken, 2 do
  local s = tonumber(taken[i])
  if s >= at + spacing then break end
  if s > at - spacing then at = s + spacing end
end
redis.call('ZADD', KEYS[1], at, ARGV[4])
redis.call('ZADD', KEYS[2], at, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil((at - now + window) * 1000) + 1000)
redis.call('PEXPIRE', KEYS[2], math.ceil((at - now + spacing) * 1000) + 1000)
return {tostring(at), tostring(at - now)}
"""

# KEYS: the chat's reservations. ARGV: the send's id, the time it counts from now on (on
# Redis's clock), the chat window (s). A send whose answer came late counts from later.
_LATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local at = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', 'GT', at, ARGV[1])
local keep = math.ceil((at - now + tonumber(ARGV[3])) * 1000) + 1000
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return 1
"""

# KEYS: the chat's reservations. ARGV: chat window (s), chat count, retry after (s), id.
# Fills the chat's window so that nothing more fits before now + retry after.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local until_ = now + tonumber(ARGV[3])
for i = 1, count do
  redis.call('ZADD', KEYS[1], until_ - window, ARGV[4] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[1], math.ceil((until_ - now + window) * 1000) + 1000)
return 1
"""


class SharedThrottle:
    """The in-process :class:`~bot.telegram.throttle.Throttle`'s interface, counted in Redis."""

    def __init__(
        self,
        redis: Redis,
        limits: Limits | None = None,
        *,
        prefix: str = "funnelbot:throttle",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self.redis = redis
        self._prefix = prefix
        self._sleep = sleep
        self._reserve = redis.register_script(_RESERVE)
        self._hold = redis.register_script(_HOLD)
        self._late = redis.register_script(_LATE)
        self._trips = RoundTrips()
        self._clock = time.monotonic
        self._local = Throttle(self.limits, sleep=sleep)
        self._ids = itertools.count()
        self._me = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._outage = RedisOutage(
            log,
            "Redis unreachable (%s): rate limits are kept per process",
            "Redis answers again: rate limits are shared",
            time_source=time_source,
        )
        # A burst starts hundreds of sends at once; each reservation takes Redis a fraction
        # of a millisecond, so they queue here rather than each opening a connection
        # (or exhausting the client's pool, which would read as Redis being down).
        self._calls = asyncio.Semaphore(8)
        self.waited = 0.0
        """Seconds spent waiting for slots, summed over all sends (for metrics)."""

    async def acquire(self, chat_id: int) -> None:
        """Wait until one more message (or edit) into ``chat_id`` keeps every limit,
        counting it for every process that shares the Redis."""
        if await self._reserved(chat_id) is None:
            await self._local.acquire(chat_id)

    async def _reserved(self, chat_id: int) -> tuple[str, float, float] | None:
        """Reserve the send's slot and wait for it: its id, its time on Redis's clock and
        on this process's; None when Redis could not be reached."""
        window = self._window(chat_id)
        overall = self.limits.overall.scaled(self.limits.margin)
        spacing = overall.seconds / overall.count
        ident = self._id()
        try:
            async with self._calls:
                if self._outage.skip():  # (also for the sends that queued meanwhile)
                    return None
                at, wait = await self._reserve(
                    keys=[f"{self._prefix}:chat:{chat_id}", f"{self._prefix}:bot"],
                    args=[window.seconds, window.count, spacing, ident],
                )
        except self._outage.faults as exc:
            self._outage.failed(exc)
            return None
        self._outage.answered()
        waiting = float(wait)
        if waiting > 0:
            self.waited += waiting
            await self._sleep(waiting)
        return ident, float(at), self._clock()

    @asynccontextmanager
    async def slot(self, chat_id: int) -> AsyncIterator[None]:
        """Wait as :meth:`acquire` does, then make the send inside the block; leaving the
        block is its answer, and one that came late moves the send later in Redis."""
        reserved = await self._reserved(chat_id)
        if reserved is None:  # the process's own throttle, which learns by itself
            async with self._local.slot(chat_id):
                yield
            return
        ident, at, sent = reserved
        ok = False
        try:
            yield
            ok = True
        finally:
            trip = self._clock() - sent
            if ok:
                self._trips.add(trip)
            window = self._window(chat_id)
            late = trip - self._trips.fastest - self.limits.margin * window.seconds
            if late > 0:
                task = asyncio.get_running_loop().create_task(
                    self._counted_late(chat_id, ident, at + late, window.seconds)
                )
                _TASKS.add(task)
                task.add_done_callback(_TASKS.discard)

    def _window(self, chat_id: int) -> Window:
        return (self.limits.group if chat_id < 0 else self.limits.private).scaled(
            self.limits.margin
        )

    async def _counted_late(self, chat_id: int, ident: str, at: float, window: float) -> None:
        if self._outage.skip():
            return
        try:
            await self._late(keys=[f"{self._prefix}:chat:{chat_id}"], args=[ident, at, window])
        except self._outage.faults as exc:
            self._outage.failed(exc)

    def back_off(self, chat_id: int, retry_after: float) -> None:
        """A 429 came back anyway: hold the chat back for ``retry_after`` seconds in every
        process (and in this one at once, while Redis is told)."""
        self._local.back_off(chat_id, retry_after)
        window = (self.limits.group if chat_id < 0 else self.limits.private).scaled(
            self.limits.margin
        )
        task = asyncio.get_running_loop().create_task(
            self._hold_chat(chat_id, window.seconds, window.count, retry_after)
        )
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    @property
    def fallback(self) -> Throttle:
        """The per-process throttle used while Redis cannot be reached."""
        return self._local

    def forget_idle(self, older_than: float = 600.0) -> None:
        """Redis forgets quiet chats by itself (their keys expire); the fallback's
        records are trimmed."""
        self._local.forget_idle(older_than)

    async def close(self) -> None:
        await self.redis.aclose()

    async def _hold_chat(self, chat_id: int, window: float, count: int, after: float) -> None:
        if self._outage.skip():  # this process holds the chat back by itself meanwhile
            return
        try:
            async with self._calls:
                await self._hold(
                    keys=[f"{self._prefix}:chat:{chat_id}"],
                    args=[window, count, after, self._id()],
                )
        except self._outage.faults as exc:
            self._outage.failed(exc)

    def _id(self) -> str:
        return f"{self._me}:{next(self._ids)}"


_TASKS: set[asyncio.Task[None]] = set()
