"""The shared throttle against a real Redis: the throttles of two processes keep one
count. Most tests record the waits instead of sleeping them and read the reservations
Redis holds, so they check the rules exactly rather than by timing."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiogram import Bot
from pydantic import SecretStr
from redis.asyncio import Redis

from bot.composition import build_services
from bot.settings import Settings
from bot.telegram import shared_throttle
from bot.telegram.shared_throttle import SharedThrottle
from bot.telegram.throttle import Limits, Throttle, Window
from funnels.kernel.clock import ManualClock
from storage.uow import SqlStore

GROUP = -100_123
# Windows of seconds, so that no reservation has passed (and been dropped) before the
# last of a test is made, however slow this machine is today.
LIMITS = Limits(group=Window(5, 5.0), private=Window(1, 2.0), overall=Window(30, 0.3), margin=0)
SPACING = 0.3 / 30
EPSILON = 1e-4  # the reservations' float precision in Redis (0.1 ms)


class Waits:
    """A sleep that only writes down how long it was asked to wait."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[SharedThrottle, SharedThrottle, Waits]]:
    """Two processes' throttles on one Redis, sharing a recording sleep."""
    waits = Waits()
    one = SharedThrottle(Redis.from_url(redis_url), LIMITS, sleep=waits)
    two = SharedThrottle(Redis.from_url(redis_url), LIMITS, sleep=waits)
    yield one, two, waits
    await one.close()
    await two.close()


async def scores(throttle: SharedThrottle, key: str) -> list[float]:
    return [
        s
        for _, s in await throttle.redis.zrange(f"funnelbot:throttle:{key}", 0, -1, withscores=True)
    ]


async def test_two_processes_keep_one_groups_window_together(
    pair: tuple[SharedThrottle, SharedThrottle, Waits],
) -> None:
    one, two, waits = pair
    await asyncio.gather(*(t.acquire(GROUP) for t in [one, two] * 6))
    reserved = await scores(one, f"chat:{GROUP}")
    assert len(reserved) == 12
    # Any six sends in a row span a whole window: never more than five in one.
    assert all(b - a >= 5.0 - EPSILON for a, b in zip(reserved, reserved[5:], strict=False))
    # The first five went at once (spaced by the bot's spacing only); the rest waited
    # for the window to move on.
    first = reserved[0]
    assert reserved[4] - first <= 4 * SPACING + 0.05
    assert all(r - first >= 5.0 - EPSILON for r in reserved[5:])
    assert sum(1 for w in waits.asked if w >= 4.5) == 7


async def test_the_bots_sends_are_spaced_across_processes(redis_url: str) -> None:
    # One send a second overall, so that no reservation has passed (and been dropped)
    # before the last is made, however slow this machine is today.
    limits = Limits(overall=Window(30, 30.0), margin=0)
    waits = Waits()
    throttles = [SharedThrottle(Redis.from_url(redis_url), limits, sleep=waits) for _ in "ab"]
    try:
        await asyncio.gather(*(t.acquire(1000 + i) for i, t in enumerate(throttles * 20)))
        reserved = await scores(throttles[0], "bot")
    finally:
        for throttle in throttles:
            await throttle.close()
    assert len(reserved) == 40
    assert all(b - a >= 1.0 - EPSILON for a, b in itertools.pairwise(reserved))
    # Evenly spaced from now on: the last slot is 39 spacings after the first.
    assert reserved[-1] - reserved[0] == pytest.approx(39.0, abs=0.5)
    assert max(waits.asked) == pytest.approx(39.0, abs=0.5)


async def test_a_private_chat_gets_one_message_a_window(
    pair: tuple[SharedThrottle, SharedThrottle, Waits],
) -> None:
    one, two, _ = pair
    await asyncio.gather(one.acquire(7), two.acquire(7), one.acquire(7))
    reserved = await scores(one, "chat:7")
    assert [round(b - a, 3) for a, b in itertools.pairwise(reserved)] == [2.0, 2.0]


async def test_a_429_in_one_process_holds_the_chat_in_the_other(
    pair: tuple[SharedThrottle, SharedThrottle, Waits],
) -> None:
    one, two, waits = pair
    one.back_off(GROUP, 2.0)
    await asyncio.gather(*shared_throttle._TASKS)  # Redis has been told
    await two.acquire(GROUP)
    assert waits.asked[-1] == pytest.approx(2.0, abs=0.1)


async def test_slots_really_wait(redis_url: str) -> None:
    limits = Limits(group=Window(3, 0.3), overall=Window(30, 1.0), margin=0)
    throttles = [SharedThrottle(Redis.from_url(redis_url), limits) for _ in range(2)]
    sent: list[float] = []

    async def send(throttle: SharedThrottle) -> None:
        async with throttle.slot(GROUP):
            sent.append(time.monotonic())

    started = time.monotonic()
    try:
        await asyncio.gather(*(send(t) for t in throttles * 4))
    finally:
        for throttle in throttles:
            await throttle.close()
    # Eight sends at three a window: the last two wait two whole windows.
    assert len(sent) == 8
    assert max(sent) - started >= 0.6 - 0.01
    assert sum(throttle.waited for throttle in throttles) >= 0.3 * 3 + 0.6 * 2 - 0.05


async def test_without_redis_each_process_keeps_the_limits_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    throttle = SharedThrottle(down, Limits(private=Window(1, 0.2), margin=0))
    with caplog.at_level(logging.WARNING, logger="funnelbot.throttle"):
        await throttle.acquire(7)
        started = time.monotonic()
        await throttle.acquire(7)  # the in-process throttle makes it wait a window
        waited = time.monotonic() - started
        throttle.back_off(GROUP, 1.0)
        await asyncio.gather(*shared_throttle._TASKS)
    await throttle.close()
    assert waited >= 0.2 - 0.01
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, not once per send
    assert "Redis unreachable" in warnings[0].getMessage()


async def test_the_service_shares_limits_when_redis_is_configured(
    redis_url: str, store: SqlStore
) -> None:
    def services(url: str | None) -> object:
        settings = Settings(
            bot_token=SecretStr("42:TEST"),
            redis_url=url,
            _env_file=None,  # type: ignore[call-arg]
        )
        clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
        return build_services(settings, store, clock, Bot("42:TEST")).throttle

    shared = services(redis_url)
    assert isinstance(shared, SharedThrottle)
    await shared.close()
    assert isinstance(services(None), Throttle)


async def test_a_late_answer_holds_the_chat_later_in_every_process(redis_url: str) -> None:
    limits = Limits(group=Window(2, 5.0), overall=Window(30, 0.3), margin=0)
    waits = Waits()
    one = SharedThrottle(Redis.from_url(redis_url), limits, sleep=waits)
    two = SharedThrottle(Redis.from_url(redis_url), limits, sleep=waits)
    now = [100.0]
    one._clock = lambda: now[0]  # this process's clock, moved by hand
    try:
        async with one.slot(GROUP):  # a usual round trip: 0.05 s
            now[0] += 0.05
        async with one.slot(GROUP):  # held up on the way: its answer 1.55 s late
            now[0] += 1.6
        await asyncio.gather(*shared_throttle._TASKS)
        first, second = await scores(one, f"chat:{GROUP}")
        assert second - first == pytest.approx(1.55 + SPACING, abs=0.05)  # moved 1.55 s
        # In the other process (2 a 5 s): the third waits for the first to leave the
        # window, the fourth for the second, which now counts 1.55 s later.
        await two.acquire(GROUP)
        await two.acquire(GROUP)
        third, fourth = waits.asked[-2:]
        assert third == pytest.approx(5.0, abs=0.1)
        assert fourth == pytest.approx(5.0 + 1.55 + SPACING, abs=0.1)
    finally:
        await one.close()
        await two.close()


async def test_a_usual_answer_moves_nothing(
    pair: tuple[SharedThrottle, SharedThrottle, Waits],
) -> None:
    one, _, _ = pair
    now = [100.0]
    one._clock = lambda: now[0]
    for _ in range(3):
        async with one.slot(GROUP):
            now[0] += 0.05
    await asyncio.gather(*shared_throttle._TASKS)
    reserved = await scores(one, f"chat:{GROUP}")
    assert reserved[-1] - reserved[0] < 3 * SPACING + 0.05
