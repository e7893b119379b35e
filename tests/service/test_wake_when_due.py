"""The service brings its tick forward to the instant the last tick left as the next one
due: once the clock reaches it, once per instant, never while a tick runs, and not at
all while nothing is planned (no I/O: a hand-moved clock and a stand-in scheduler)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from bot import service
from bot.service import _Ticker, _wake_when_due
from funnels.kernel.clock import ManualClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Scheduler:
    """Records each time the tick is brought forward."""

    def __init__(self) -> None:
        self.woken: list[datetime] = []

    def modify_job(self, job_id: str, next_run_time: datetime) -> None:
        assert job_id == "tick"
        self.woken.append(next_run_time)


class Ticker:
    def __init__(self) -> None:
        self.next_due: datetime | None = None
        self.running = asyncio.Lock()


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "WAKE_EVERY", 0.001)


async def _looks(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0.002)


async def test_the_tick_is_brought_forward_once_when_the_clock_reaches_the_next_due() -> None:
    clock, scheduler, ticker = ManualClock(T0), Scheduler(), Ticker()
    waking = asyncio.create_task(_wake_when_due(cast(_Ticker, ticker), clock, cast(Any, scheduler)))
    try:
        await _looks()
        assert scheduler.woken == []  # nothing planned

        ticker.next_due = T0 + timedelta(minutes=1)
        clock.set(T0 + timedelta(seconds=59))
        await _looks()
        assert scheduler.woken == []  # not yet

        async with ticker.running:  # a tick is running: it finds the step itself
            clock.set(T0 + timedelta(minutes=1))
            await _looks()
            assert scheduler.woken == []
        await _looks()
        assert len(scheduler.woken) == 1  # once the tick ended, and only once
        assert ticker.next_due is None

        ticker.next_due = T0 + timedelta(minutes=1)  # a step due and not claimed yet
        await _looks()
        assert len(scheduler.woken) == 2
    finally:
        waking.cancel()


async def test_a_failure_is_logged_and_the_regular_tick_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Scheduler):
        def modify_job(self, job_id: str, next_run_time: datetime) -> None:
            raise RuntimeError("scheduler shut down")

    ticker = Ticker()
    ticker.next_due = T0
    await asyncio.wait_for(
        _wake_when_due(cast(_Ticker, ticker), ManualClock(T0), cast(Any, Broken())), 1
    )
    assert "they wait for the tick" in caplog.text
