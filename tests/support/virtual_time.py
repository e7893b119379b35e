"""Real ``funnelbot run`` processes on one virtual clock (``FUNNELBOT_CLOCK_FILE``),
moved forward by the test: to each instant something is due, then, once every process
has had its ticks, only when the work due by then is done (nothing claimable due, no
step being sent, no update waiting in Telegram or in the inbox)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import write_instant
from storage.tables import step_runs, telegram_updates
from storage.uow import SqlStore
from tests.botapi import LocalBotAPI


@dataclass
class VirtualTime:
    path: Path
    engine: AsyncEngine
    api: LocalBotAPI | None
    tick_seconds: float
    now: datetime
    on_stuck: Callable[[], str] = lambda: ""

    def __post_init__(self) -> None:
        write_instant(self.path, self.now)

    def set(self, moment: datetime) -> None:
        self.now = max(self.now, moment)
        write_instant(self.path, self.now)

    async def busy(self) -> str | None:
        """What is still to do at ``now``, or None when all is done."""
        async with SqlStore(self.engine).transaction() as tx:
            due = await tx.steps.next_due_at()
            running = (
                await tx.conn.execute(select(func.count()).where(step_runs.c.status == "running"))
            ).scalar()
            waiting = (
                await tx.conn.execute(
                    select(func.count()).where(telegram_updates.c.state == "pending")
                )
            ).scalar()
        if due is not None and due <= self.now:
            return f"a step due at {due} not claimed"
        if running:
            return f"{running} steps being sent"
        if waiting:
            return f"{waiting} updates waiting in the inbox"
        if self.api is not None and self.api.pending_updates():
            return f"{len(self.api.pending_updates())} updates waiting in Telegram"
        return None

    async def settle(self, within: float = 60.0) -> None:
        """Wait until the work due by ``now`` is done: every process has ticked twice
        since the clock moved, and nothing is left to do."""
        await asyncio.sleep(2.5 * self.tick_seconds)
        deadline = time.monotonic() + within
        while (left := await self.busy()) is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"at {self.now}: {left}\n{self.on_stuck()}")
            await asyncio.sleep(self.tick_seconds / 2)

    async def at(self, moment: datetime) -> None:
        """Move to ``moment`` and wait for what is due by then to be done."""
        self.set(moment)
        await self.settle()

    async def glance(self, moment: datetime) -> None:
        """Move to ``moment`` and give every process a few ticks, without waiting for
        the work to be done (a step may rightly stay in doubt)."""
        self.set(moment)
        await asyncio.sleep(4 * self.tick_seconds)

    async def run_until(self, until: datetime) -> int:
        """Every due instant up to ``until`` in turn, then ``until``; how many instants."""
        instants = 0
        while True:
            async with SqlStore(self.engine).transaction() as tx:
                due = await tx.steps.next_due_at()
            if due is None or due > until:
                break
            await self.at(max(due, self.now))
            instants += 1
        await self.at(max(until, self.now))
        return instants + 1
