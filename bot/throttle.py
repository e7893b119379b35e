"""Keeping outgoing messages under Telegram's flood limits, before Telegram says 429.

Telegram allows about 20 messages a minute into one group (edits count), about one a
second into one private chat, and about 30 a second overall. A send waits until both
its chat's window and the global one have room, and is recorded at that moment only, so a
group waiting out its minute never holds up private messages to other chats. Windows
carry a small margin because Telegram's clock is not ours.

Callback answers, reactions and admin calls do not pass through here: they are not
bulk messages, and a tap must be answered within seconds whatever the queue holds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``count`` messages in any ``seconds``-long window."""

    count: int
    seconds: float

    def scaled(self, margin: float) -> Window:
        return Window(self.count, self.seconds * (1 + margin))


@dataclass(frozen=True, slots=True)
class Limits:
    group: Window = Window(20, 60.0)
    private: Window = Window(1, 1.0)
    overall: Window = Window(30, 1.0)
    margin: float = 0.04
    """Fraction added to every window's length."""


class _Sent:
    """When the last ``count`` messages of one window went out, oldest first."""

    __slots__ = ("times", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        # Each entry is a one-element list so a send can move its own mark later.
        self.times: deque[list[float]] = deque(maxlen=window.count)

    def free_at(self, now: float) -> float:
        """The earliest time at or after ``now`` when one more message fits."""
        if len(self.times) < self.window.count:
            return now
        return max(now, self.times[0][0] + self.window.seconds)

    def record(self, at: float) -> list[float]:
        mark = [at]
        self.times.append(mark)
        return mark

    def hold_until(self, until: float) -> None:
        """Telegram said 429: nothing goes out before ``until``."""
        for _ in range(self.window.count):
            self.times.append([until - self.window.seconds])


class Throttle:
    def __init__(
        self,
        limits: Limits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._sleep = sleep
        self._chats: dict[int, _Sent] = {}
        self._overall = _Sent(self.limits.overall.scaled(self.limits.margin))
        self.waited = 0.0
        """Seconds spent waiting for slots, summed over all sends (for metrics)."""

    def _chat(self, chat_id: int) -> _Sent:
        sent = self._chats.get(chat_id)
        if sent is None:
            # Groups and supergroups have negative ids; users positive.
            window = self.limits.group if chat_id < 0 else self.limits.private
            sent = self._chats[chat_id] = _Sent(window.scaled(self.limits.margin))
        return sent

    async def acquire(self, chat_id: int) -> tuple[list[float], ...]:
        """Wait until one more message (or edit) into ``chat_id`` keeps every limit.

        A send is recorded only at the moment both its chat's window and the global one
        have room; waiters that lose a race for the same moment simply look again.
        Returns the marks :meth:`slot` moves to when the request finished.
        """
        chat = self._chat(chat_id)
        while True:
            now = self._clock()
            at = max(chat.free_at(now), self._overall.free_at(now))
            if at <= now:
                return chat.record(now), self._overall.record(now)
            self.waited += at - now
            await self._sleep(at - now)

    @asynccontextmanager
    async def slot(self, chat_id: int) -> AsyncIterator[None]:
        """``acquire``, then count the send as made when its request finished.

        Telegram counts a message when it arrives, which is somewhere between our
        acquiring the slot and its answer; counting from the answer keeps the next
        window's first send safely after it, however slow the network was.
        """
        marks = await self.acquire(chat_id)
        try:
            yield
        finally:
            finished = self._clock()
            for mark in marks:
                mark[0] = max(mark[0], finished)

    def back_off(self, chat_id: int, retry_after: float) -> None:
        """A 429 came back anyway: hold the chat back for ``retry_after`` seconds."""
        self._chat(chat_id).hold_until(self._clock() + retry_after)

    def forget_idle(self, older_than: float = 600.0) -> None:
        """Drop the bookings of chats quiet for a while, so memory stays flat."""
        cutoff = self._clock() - older_than
        for chat_id in [
            c for c, b in self._chats.items() if not b.times or b.times[-1][0] < cutoff
        ]:
            del self._chats[chat_id]
