"""The flood-limit throttle on a fake clock: no window ever holds more than its limit,
and nothing waits longer than the limits require."""

from __future__ import annotations

import asyncio
import random
import time

from hypothesis import given, settings, strategies as st

from bot.throttle import Limits, Throttle, Window, _Sent


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


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
        mark = sent.record(now)
        assert mark == [now]
        slots.append(now)
    assert _max_in_window(slots, seconds) <= count


def test_a_free_window_sends_at_once_and_a_full_one_waits_exactly_its_length() -> None:
    sent = _Sent(Window(3, 10.0))
    for _ in range(3):
        assert sent.free_at(0.0) == 0.0
        sent.record(0.0)
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


def test_slow_mode_deletes_only_what_comes_too_soon() -> None:
    from bot.slowmode import SlowMode

    fake = FakeTime()
    slow = SlowMode(clock=fake.clock)
    assert not slow.too_soon(-1, 5)  # off: nothing is too soon
    slow.set(-1, 30)
    assert not slow.too_soon(-1, 5)
    fake.now += 10
    assert slow.too_soon(-1, 5)
    assert not slow.too_soon(-1, 6)  # another member has their own clock
    fake.now += 21
    assert not slow.too_soon(-1, 5)
    slow.set(-1, 0)
    assert not slow.too_soon(-1, 5)
    assert not slow.active(-1)


def test_a_slow_send_counts_from_when_its_request_finished() -> None:
    fake = FakeTime()
    throttle = Throttle(
        Limits(group=Window(1, 10.0), overall=Window(100, 1.0), margin=0),
        clock=fake.clock,
        sleep=fake.sleep,
    )

    async def main() -> float:
        async with throttle.slot(-5):
            fake.now += 3.0  # the request took 3 s to come back
        await throttle.acquire(-5)
        return fake.now

    # Counted from 3.0, not 0.0: the next send into the group waits until 13.0.
    assert asyncio.run(main()) == 13.0


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
