"""Keeping outgoing messages under Telegram's flood limits, before Telegram says 429.

Telegram allows about 20 messages a minute into one group (edits count), about one a
second into one private chat, and about 30 a second overall, and counts a message when
it arrives. A send waits until both its chat's window and the global one have room, and
is counted from the moment it gets its slot, which is when its request goes out.

Counting from the start works because a message arrives a one-way network delay after it
is sent, and that delay is about the same for every request: it shifts all arrivals
alike, so the spacing between our sends is the spacing Telegram sees. Only jitter (one
request slower than another) can bring arrivals closer together than we sent them, and
every window is longer than Telegram's by a margin (4 %: 40 ms of a 1 s window, 2.4 s of
a minute) that absorbs it. Counting every send from its answer instead would add a round
trip to every cycle of the global window: 30 per 1.24 s rather than per 1.04 s on a
200 ms network.

Some requests are held up by far more than the margin: the first of a burst open new
connections (a TLS handshake is a few round trips) while the event loop is busy starting
hundreds of sends. The answer shows it: a send whose round trip was longer than the
fastest recent one by more than the margin absorbs is counted that much later, and one
still unanswered when it should have been answered is counted as arriving now, until its
answer says otherwise. On a steady network neither ever happens, and the rate is that of
counting from the start.

Global sends go out evenly spaced, one every window length / count (about 35 ms), never
30 at once followed by a second of silence: 30 requests started together queue behind
one another in the connection pool and at the server, which is jitter of our own making.
The spacing runs from when each send was due, so a sender that wakes a millisecond late
does not push every later slot back. One group's posts are not spaced: a script's posts
should appear together, and 2.4 s of margin is far more than any jitter. A private
chat's window holds one message, so its sends are one window apart anyway.

Senders that have room in their chat queue for the global slots in arrival order, so a
group waiting out its minute never holds up private messages to other chats, and a
backlog of hundreds wakes one sender per slot rather than all of them.

Callback answers, reactions and admin calls do not pass through here: they are not
bulk messages, and a tap must be answered within seconds whatever the queue holds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol


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
    """Fraction added to every window's length: the arrival jitter it absorbs."""


class Throttling(Protocol):
    """What the messenger needs of a throttle: :class:`Throttle` in one process,
    :class:`bot.telegram.shared_throttle.SharedThrottle` for several sharing a bot."""

    limits: Limits
    waited: float

    async def acquire(self, chat_id: int) -> None: ...
    def slot(self, chat_id: int) -> AbstractAsyncContextManager[None]: ...
    def back_off(self, chat_id: int, retry_after: float) -> None: ...
    def forget_idle(self, older_than: float = 600.0) -> None: ...


class _Send:
    """One message: when it got its slot, and when its answer came (None until then)."""

    __slots__ = ("answered", "at")

    def __init__(self, at: float, answered: float | None) -> None:
        self.at = at
        self.answered = answered

    @property
    def answered_by(self) -> float:
        """The latest it can have arrived: its answer, or never while that is awaited."""
        return float("inf") if self.answered is None else self.answered


class RoundTrips:
    """The fastest of the recent round trips: the network's delay without the jitter."""

    __slots__ = ("_recent", "fastest")

    def __init__(self, keep: int = 200) -> None:
        self._recent: deque[float] = deque(maxlen=keep)
        self.fastest = 0.0
        """Zero until an answer comes: the cautious guess, by which every answer is late."""

    def add(self, seconds: float) -> None:
        self._recent.append(seconds)
        self.fastest = min(self._recent)


class _Sent:
    """The recent sends of one window, in the order they got their slots.

    ``margin`` lengthens the window; ``even`` also spaces its sends ``seconds / count``
    apart, counted from when each was due rather than from when it went, so that late
    wake-ups do not add up while the count is still kept on the times sends really went.
    A send is kept until it can no longer count, a window after its answer; one still
    unanswered is kept however long that takes.
    """

    __slots__ = ("due", "round_trips", "sends", "slack", "spacing", "window")

    def __init__(
        self,
        window: Window,
        margin: float = 0.0,
        *,
        even: bool = False,
        round_trips: RoundTrips | None = None,
    ) -> None:
        self.window = window.scaled(margin)
        self.slack = window.seconds * margin
        """The lateness the margin absorbs."""
        self.spacing = self.window.seconds / window.count if even else 0.0
        self.round_trips = round_trips or RoundTrips()
        self.sends: deque[_Send] = deque()
        self.due = float("-inf")
        """The earliest time the spacing allows the next send."""

    def counted_at(self, send: _Send, now: float) -> float:
        """When ``send`` counts as made: its slot, or later if its answer says it was held
        up on the way by more than the margin absorbs (unanswered: as if answered now)."""
        answered = now if send.answered is None else send.answered
        return max(send.at, answered - self.round_trips.fastest - self.slack)

    def free_at(self, now: float) -> float:
        """The earliest time at or after ``now`` when one more message fits."""
        at = max(now, self.due)
        count = self.window.count
        if len(self.sends) >= count:
            latest = sorted(self.counted_at(send, now) for send in self.sends)
            at = max(at, latest[-count] + self.window.seconds)
        return at

    def record(self, send: _Send, *, due: float | None = None) -> None:
        """Count ``send``, which was due at ``due`` (when it went, if not given)."""
        self.sends.append(send)
        self.due = (send.at if due is None else due) + self.spacing
        while self.sends[0].answered_by <= send.at - self.window.seconds:
            self.sends.popleft()

    def hold_until(self, until: float) -> None:
        """Telegram said 429: nothing goes out before ``until``."""
        for _ in range(self.window.count):
            start = until - self.window.seconds
            self.sends.append(_Send(start, start))


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
        self._round_trips = RoundTrips()
        self._chats: dict[int, _Sent] = {}
        self._overall = _Sent(
            self.limits.overall, self.limits.margin, even=True, round_trips=self._round_trips
        )
        # Held by the one sender waiting for the next global slot; the others queue on
        # it in arrival order.
        self._turn = asyncio.Lock()
        self.waited = 0.0
        """Seconds spent waiting for slots, summed over all sends (for metrics)."""

    def _chat(self, chat_id: int) -> _Sent:
        sent = self._chats.get(chat_id)
        if sent is None:
            # Groups and supergroups have negative ids; users positive.
            window = self.limits.group if chat_id < 0 else self.limits.private
            sent = self._chats[chat_id] = _Sent(
                window, self.limits.margin, round_trips=self._round_trips
            )
        return sent

    async def acquire(self, chat_id: int) -> None:
        """Wait until one more message (or edit) into ``chat_id`` keeps every limit, and
        count it as sent now, with nothing more to learn about it.

        :meth:`slot` is the same, but learns from the answer; it is what senders use.
        """
        await self._take(chat_id, answered=True)

    async def _take(self, chat_id: int, *, answered: bool) -> _Send:
        """First the chat must have room; then the sender queues for the next global slot.
        If the chat lost its room meanwhile (another send into it went first, or a 429
        held it back), the sender leaves the queue and waits for the chat again. The chat
        is looked up afresh each time, in case :meth:`forget_idle` dropped its record.
        """
        started = self._clock()
        while True:
            while (now := self._clock()) < (at := self._chat(chat_id).free_at(now)):
                await self._sleep(at - now)
            async with self._turn:
                due = self._clock()
                while True:
                    now = self._clock()
                    chat = self._chat(chat_id)
                    if chat.free_at(now) > now:
                        break
                    at = self._overall.free_at(now)
                    if at <= now:
                        send = _Send(now, now if answered else None)
                        chat.record(send)
                        self._overall.record(send, due=due)
                        self.waited += now - started
                        return send
                    due = at
                    # No longer than one spacing: a send that is late with its answer
                    # holds the window only until that answer comes.
                    await self._sleep(min(at - now, self._overall.spacing))

    @asynccontextmanager
    async def slot(self, chat_id: int) -> AsyncIterator[None]:
        """Wait as :meth:`acquire` does, then make the send inside the block.

        The send counts from the moment the block is entered, when its request goes out;
        leaving the block is its answer, and a round trip no longer than usual changes
        nothing. Only a successful round trip teaches what usual is.
        """
        send = await self._take(chat_id, answered=False)
        ok = False
        try:
            yield
            ok = True
        finally:
            send.answered = self._clock()
            if ok:
                self._round_trips.add(send.answered - send.at)

    def back_off(self, chat_id: int, retry_after: float) -> None:
        """A 429 came back anyway: hold the chat back for ``retry_after`` seconds."""
        self._chat(chat_id).hold_until(self._clock() + retry_after)

    def forget_idle(self, older_than: float = 600.0) -> None:
        """Drop the records of chats quiet for a while, so memory stays flat."""
        cutoff = self._clock() - older_than
        for chat_id in [
            c for c, b in self._chats.items() if not b.sends or b.sends[-1].at < cutoff
        ]:
            del self._chats[chat_id]
