"""Slow mode shared through a real Redis: a member's second message within a talk's
slow mode is caught whichever process receives it, the talk's end lifts it everywhere,
and without Redis each process keeps it alone and says so once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiogram import Bot
from pydantic import SecretStr
from redis.asyncio import Redis

from bot.composition import build_services
from bot.settings import Settings
from bot.telegram.slowmode import SharedSlowMode, SlowMode
from funnels.kernel.clock import ManualClock
from storage.uow import SqlStore

GROUP, ANA, BO = -100123, 501, 502


@pytest.fixture
async def processes(redis_url: str) -> AsyncIterator[tuple[SharedSlowMode, SharedSlowMode]]:
    """Two processes' slow modes on one Redis (each reading whether a chat is in slow mode
    at every message, as one would a second later)."""
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    yield SharedSlowMode(first, refresh=0), SharedSlowMode(second, refresh=0)
    await first.aclose()
    await second.aclose()


async def test_a_second_message_is_caught_by_the_other_process(
    processes: tuple[SharedSlowMode, SharedSlowMode],
) -> None:
    talk, other = processes
    assert not await other.too_soon(GROUP, ANA)  # no talk: nothing is too soon
    await talk.set(GROUP, 30)  # the process running the talk
    assert not await other.too_soon(GROUP, ANA)
    assert await talk.too_soon(GROUP, ANA)  # her next message, on the other process
    assert not await talk.too_soon(GROUP, BO)  # each member has their own clock
    assert await other.too_soon(GROUP, BO)
    await talk.set(GROUP, 0)  # the talk ends
    assert not await other.too_soon(GROUP, ANA) and not await talk.too_soon(GROUP, ANA)


async def test_a_members_clock_runs_out_after_the_talks_seconds(
    processes: tuple[SharedSlowMode, SharedSlowMode],
) -> None:
    talk, other = processes
    await talk.set(GROUP, 1)
    assert not await talk.too_soon(GROUP, ANA)
    assert await other.too_soon(GROUP, ANA)
    await asyncio.sleep(1.1)
    assert not await other.too_soon(GROUP, ANA)


async def test_a_migrated_group_keeps_its_slow_mode(
    processes: tuple[SharedSlowMode, SharedSlowMode],
) -> None:
    talk, other = processes
    await talk.set(GROUP, 30)
    await other.move(GROUP, GROUP - 1)
    assert not await talk.too_soon(GROUP - 1, ANA)
    assert await other.too_soon(GROUP - 1, ANA)
    assert not await other.too_soon(GROUP, ANA)  # the old id is no longer in slow mode


async def test_without_redis_each_process_keeps_it_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    slow = SharedSlowMode(gone, refresh=0)
    await slow.set(GROUP, 30)
    assert not await slow.too_soon(GROUP, ANA)
    assert await slow.too_soon(GROUP, ANA)  # the process's own clock still holds
    assert not await slow.too_soon(GROUP, BO)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "slow mode is kept in this process" in warnings[0].getMessage()
    await gone.aclose()


async def test_the_service_shares_slow_mode_when_redis_is_configured(
    redis_url: str, store: SqlStore
) -> None:
    def slow_mode(url: str | None) -> object:
        settings = Settings(
            bot_token=SecretStr("42:TEST"),
            redis_url=url,
            _env_file=None,  # type: ignore[call-arg]
        )
        clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
        return build_services(settings, store, clock, Bot("42:TEST")).slow_mode

    shared = slow_mode(redis_url)
    assert isinstance(shared, SharedSlowMode)
    await shared.redis.aclose()
    assert isinstance(slow_mode(None), SlowMode)
