"""The flood-limit throttle on a fake clock: no window ever holds more than its limit,
and nothing waits longer than the limits require.

Telegram counts a message when it arrives; the tests that model the network run the
senders on an event loop whose clock jumps straight to the next timer, send by send, and
count arrivals the way the server does.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import selectors
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings, strategies as st

from bot.telegram.throttle import Limits, Throttle, Window, _Send, _Sent

T = TypeVar("T")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class _Jumping(selectors.SelectSelector):
    """Never waits: moves the loop's clock on by the time it was asked to wait."""

    def __init__(self, loop: VirtualLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:  # nothing ready and no timer: every task waits on another
            raise RuntimeError("deadlock: no task can ever run again")
        self._loop.now += max(timeout, 0.0)
        return super().select(0)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on a clock that jumps straight to the next timer: concurrent
    senders interleave as on a real loop, and seconds of traffic take milliseconds."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_Jumping(self))

    def time(self) -> float:
        return self.now

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        try:
            return self.run_until_complete(main)
        finally:
            self.close()


def _max_in_window(times: list[float], seconds: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - seconds + 1e-9:  # exactly one window apart is fine
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@given(
    st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=80),
    st.integers(min_value=1, max_value=25),
    st.floats(min_value=0.1, max_value=3),
)
@settings(max_examples=200, deadline=None)
def test_a_window_never_holds_more_than_its_count(
    arrivals: list[float], count: int, seconds: float
) -> None:
    sent = _Sent(Window(count, seconds))
    now, slots = 0.0, []
    for gap in arrivals:
        now = sent.free_at(now + gap)
        sent.record(_Send(now, now))
        slots.append(now)
    assert _max_in_window(slots, seconds) <= count


def test_a_free_window_sends_at_once_and_a_full_one_waits_exactly_its_length() -> None:
    sent = _Sent(Window(3, 10.0))
    for _ in range(3):
        assert sent.free_at(0.0) == 0.0
        sent.record(_Send(0.0, 0.0))
    assert sent.free_at(1.0) == 10.0
    assert sent.free_at(30.0) == 30.0


def test_sends_into_one_group_spread_over_the_minute_while_private_chats_flow() -> None:
    fake = FakeTime()
    throttle = Throttle(
        Limits(group=Window(20, 60.0), private=Window(1, 1.0), overall=Window(30, 1.0), margin=0),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    sent: dict[int, list[float]] = {}

    async def send(chat_id: int) -> None:
        await throttle.acquire(chat_id)
        sent.setdefault(chat_id, []).append(fake.now)

    async def main() -> None:
        for _ in range(25):
            await send(-100)
        for user in range(1, 40):
            await send(user)

    asyncio.run(main())
    group = sent.pop(-100)
    assert _max_in_window(group, 60.0) <= 20
    assert group[20] >= 60.0  # the 21st post waited for the window
    every = sorted(t for times in sent.values() for t in times) + group
    assert _max_in_window(every, 1.0) <= 30


def test_a_429_holds_the_chat_back_for_retry_after() -> None:
    fake = FakeTime()
    throttle = Throttle(Limits(margin=0), clock=fake.clock, sleep=fake.sleep)

    async def main() -> float:
        await throttle.acquire(7)
        throttle.back_off(7, 5.0)
        await throttle.acquire(7)
        return fake.now

    assert asyncio.run(main()) >= 5.0


def test_many_concurrent_senders_keep_every_limit() -> None:
    # Real (tiny) windows: concurrency needs a real event loop clock to interleave.
    limits = Limits(
        group=Window(5, 0.05), private=Window(1, 0.02), overall=Window(10, 0.03), margin=0
    )
    throttle = Throttle(limits)
    log: list[tuple[int, float]] = []
    rng = random.Random(7)
    chats = [rng.choice([-1, -2, 1, 2, 3, 4, 5]) for _ in range(120)]

    async def send(chat_id: int) -> None:
        await throttle.acquire(chat_id)
        log.append((chat_id, time.monotonic()))

    async def main() -> None:
        await asyncio.gather(*(send(c) for c in chats))

    asyncio.run(main())
    assert len(log) == len(chats)
    for chat_id in set(chats):
        window = limits.group if chat_id < 0 else limits.private
        times = [t for c, t in log if c == chat_id]
        # The throttle reads the clock a hair before the log does; allow for that.
        assert _max_in_window(times, window.seconds * 0.9) <= window.count
    assert _max_in_window([t for _, t in log], limits.overall.seconds * 0.9) <= 10


async def test_slow_mode_deletes_only_what_comes_too_soon() -> None:
    from bot.telegram.slowmode import SlowMode

    fake = FakeTime()
    slow = SlowMode(clock=fake.clock)
    assert not await slow.too_soon(-1, 5)  # off: nothing is too soon
    await slow.set(-1, 30)
    assert not await slow.too_soon(-1, 5)
    fake.now += 10
    assert await slow.too_soon(-1, 5)
    assert not await slow.too_soon(-1, 6)  # another member has their own clock
    fake.now += 21
    assert not await slow.too_soon(-1, 5)
    await slow.set(-1, 0)
    assert not await slow.too_soon(-1, 5)
    assert not slow.active(-1)


def test_a_send_counts_from_its_slot_when_its_round_trip_is_usual() -> None:
    fake = FakeTime()
    throttle = Throttle(
        Limits(group=Window(1, 10.0), overall=Window(100, 1.0), margin=0),
        clock=fake.clock,
        sleep=fake.sleep,
    )

    async def main() -> tuple[float, float]:
        async with throttle.slot(-6):
            fake.now += 3.0  # round trips of 3 s are usual on this network
        async with throttle.slot(-5):
            sent_at = fake.now
            fake.now += 3.0
        await throttle.acquire(-5)
        return sent_at, fake.now

    # Counted from its slot at 3.0, not from its answer at 6.0: the next send into the
    # group may go at 13.0.
    assert asyncio.run(main()) == (3.0, 13.0)


@pytest.mark.parametrize("round_trip", [0.0, 0.2, 0.5, 0.9])
def test_a_slow_round_trip_does_not_lower_the_rate(round_trip: float) -> None:
    limits = Limits()
    loop = VirtualLoop()
    throttle = Throttle(limits, clock=loop.time)
    slots: list[float] = []

    async def send(chat_id: int) -> None:
        async with throttle.slot(chat_id):
            slots.append(loop.time())
            await asyncio.sleep(round_trip)

    async def main() -> None:
        await asyncio.gather(*(send(user) for user in range(1, 91)))

    loop.run(main())
    # One send every 1.04 s / 30 whatever the round trip (counted from their answers,
    # every 30 sends would take 1.04 s plus a round trip).
    spacing = limits.overall.seconds * (1 + limits.margin) / limits.overall.count
    assert slots == pytest.approx([n * spacing for n in range(90)])


def test_global_sends_are_evenly_spaced() -> None:
    limits = Limits()
    loop = VirtualLoop()
    throttle = Throttle(limits, clock=loop.time)
    slots: list[float] = []

    async def send(chat_id: int) -> None:
        async with throttle.slot(chat_id):
            slots.append(loop.time())
            await asyncio.sleep(0.1)

    async def main() -> None:
        posts = [send(group) for _ in range(5) for group in (-1, -2, -3)]
        await asyncio.gather(*posts, *(send(user) for user in range(1, 81)))

    loop.run(main())
    spacing = limits.overall.seconds * (1 + limits.margin) / limits.overall.count
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= spacing - 1e-9  # never two at once, never 30 in a bunch
    assert slots[-1] == pytest.approx((len(slots) - 1) * spacing)  # and never idle


# Half the sends into three groups, half into forty private chats: enough to fill every
# kind of window.
CHATS = st.one_of(st.sampled_from([-1, -2, -3]), st.integers(1, 40))


def _server_counts_within_limits(arrivals: list[tuple[int, float]], limits: Limits) -> None:
    """No window of the server's counting ever holds more than its count."""
    for chat_id in {c for c, _ in arrivals}:
        window = limits.group if chat_id < 0 else limits.private
        times = [t for c, t in arrivals if c == chat_id]
        assert _max_in_window(times, window.seconds) <= window.count, chat_id
    assert _max_in_window([t for _, t in arrivals], limits.overall.seconds) <= (
        limits.overall.count
    )


def _over_a_network(
    sends: list[tuple[float, int, float]], delay: float, back: float, *, warm: bool
) -> list[tuple[int, float]]:
    """Each send (asked for at, chat, extra delay on its way) goes through production
    limits; its request arrives ``delay`` + its extra after its slot, and its answer
    ``back`` seconds after that. ``warm`` makes one plain send first, so the throttle
    knows the usual round trip. Returns (chat, arrival) of every send."""
    limits = Limits()
    loop = VirtualLoop()
    throttle = Throttle(limits, clock=loop.time)
    arrivals: list[tuple[int, float]] = []

    async def send(asked_at: float, chat_id: int, extra: float) -> None:
        await asyncio.sleep(asked_at - loop.time())
        async with throttle.slot(chat_id):
            arrivals.append((chat_id, loop.time() + delay + extra))
            await asyncio.sleep(delay + extra + back)

    async def main() -> None:
        if warm:
            await send(0.0, 99, 0.0)
        start = loop.time()
        await asyncio.gather(*(send(start + at, c, extra) for at, c, extra in sends))

    loop.run(main())
    return arrivals


@given(
    st.lists(
        st.tuples(st.floats(0, 3), CHATS, st.floats(0, 1)),
        min_size=1,
        max_size=120,
    ),
    st.floats(0, 0.3),
    st.floats(0, 0.3),
)
@settings(max_examples=100, deadline=None)
def test_jitter_within_the_margin_never_breaks_a_limit_at_the_server(
    sends: list[tuple[float, int, float]], delay: float, back: float
) -> None:
    limits = Limits()
    # The margin absorbs jitter up to its share of the shortest window (40 ms of 1 s).
    jitter = limits.margin * min(w.seconds for w in (limits.group, limits.private, limits.overall))
    jittered = [(at, c, share * jitter) for at, c, share in sends]
    _server_counts_within_limits(_over_a_network(jittered, delay, back, warm=False), limits)


@given(
    st.lists(
        st.tuples(
            st.floats(0, 3),
            CHATS,
            st.one_of(st.just(0.0), st.floats(0, 0.04), st.floats(0, 3)),
        ),
        min_size=1,
        max_size=120,
    ),
    st.floats(0, 0.3),
    st.floats(0, 0.3),
)
@settings(max_examples=100, deadline=None)
def test_a_send_held_up_on_its_way_is_counted_when_it_may_have_arrived(
    sends: list[tuple[float, int, float]], delay: float, back: float
) -> None:
    # Any send may be held up for seconds (a new connection, a busy loop) once the
    # throttle has seen a usual round trip: its late answer, or the lack of one, holds
    # its place in the windows.
    _server_counts_within_limits(_over_a_network(sends, delay, back, warm=True), Limits())


def test_sends_held_up_for_seconds_stay_counted_however_many_follow() -> None:
    # Three requests stuck on their way for 3 s while 150 others queue behind them: the
    # stuck ones keep their places until answered, not pushed out by the sends after.
    sends = [(0.0, chat_id, 3.0) for chat_id in (1, 2, 3)]
    sends += [(0.0, chat_id, 0.0) for chat_id in range(100, 250)]
    _server_counts_within_limits(_over_a_network(sends, 0.1, 0.1, warm=True), Limits())


def test_a_send_still_unanswered_holds_its_place_in_its_chat() -> None:
    loop = VirtualLoop()
    throttle = Throttle(Limits(margin=0), clock=loop.time)
    slots: dict[str, float] = {}

    async def send(name: str, chat_id: int, round_trip: float, after: float = 0.0) -> None:
        await asyncio.sleep(after)
        async with throttle.slot(chat_id):
            slots[name] = loop.time()
            await asyncio.sleep(round_trip)

    async def main() -> None:
        await send("usual", 5, 0.1)
        await asyncio.gather(send("stuck", 7, 5.0), send("next", 7, 0.1, after=0.5))

    loop.run(main())
    # "stuck" was answered 5 s after its slot, so it may have arrived as late as 4.9 s
    # after it: "next" into the same chat waits a window from then, not from the slot.
    assert slots["next"] - slots["stuck"] == pytest.approx(4.9 + 1.0)


def test_quiet_chats_are_forgotten_and_busy_ones_kept() -> None:
    fake = FakeTime()
    throttle = Throttle(Limits(margin=0), clock=fake.clock, sleep=fake.sleep)

    async def send(chat_id: int) -> None:
        await throttle.acquire(chat_id)

    asyncio.run(send(1))
    fake.now += 700
    asyncio.run(send(2))
    throttle.forget_idle(older_than=600)
    assert set(throttle._chats) == {2}
