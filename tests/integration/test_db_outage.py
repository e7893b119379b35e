"""Fault drill on PostgreSQL: every database connection of the service dropped while
platform events are being stored and applied. What could not be stored is refused (the
sender sends it again), the pool reconnects, and in the end every event is stored once
and applied once: each member's task completes once and is rewarded once. Bounded: 30 s."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text

from bot.http.events import EventApplier, EventIntake
from bot.telegram.offline import RecordingMessenger
from funnels.deps import Deps
from funnels.kernel.clock import ManualClock
from funnels.kernel.records import IncomingEvent
from funnels.ladder.events import CatchUpEvents
from storage.db import create_engine
from storage.uow import SqlStore
from tests.integration.test_events_db import fans, ledger, task_cohort
from tests.support.funnel_kit import Kit, events_t, load, warmup_at

SECRET = "whsec_" + "A" * 43


async def _drop_every_connection(url: str) -> int:
    """Terminate every backend of the database but the one asking; how many."""
    killer = create_engine(url, pool_pre_ping=False)
    try:
        async with killer.connect() as conn:
            dropped = (
                await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
            await conn.commit()
    finally:
        await killer.dispose()
    return int(dropped)


@pytest.mark.postgres
async def test_connections_dropped_mid_run_lose_nothing_and_count_nothing_twice(
    pg_url: str,
) -> None:
    engine = create_engine(pg_url)
    store = SqlStore(engine)
    clock = ManualClock(warmup_at(1, "08:00"))
    messenger = RecordingMessenger()
    budget = load(budget="40.00", reward_seats=None)  # every reward paid, none owed
    kit = Kit(store, clock, messenger, Deps(store, messenger, clock), budget)
    try:
        async with asyncio.timeout(30):
            _, members = await task_cohort(kit, 20)
            applier = EventApplier(kit.deps)
            intake = EventIntake(kit.deps, SECRET, applier)
            applier.start()
            batches: list[list[IncomingEvent]] = [fans(kit, m, 3) for m in members]
            refused = 0

            async def send(batch: list[IncomingEvent]) -> None:
                nonlocal refused
                for _ in range(20):  # a sender retries what was not acknowledged
                    try:
                        await intake.submit(batch)
                        return
                    except Exception:
                        refused += 1
                        await asyncio.sleep(0.05)
                raise AssertionError("a batch was never stored")

            first = [asyncio.create_task(send(b)) for b in batches[:10]]
            await asyncio.sleep(0)  # some of them in flight
            dropped = await _drop_every_connection(pg_url)
            rest = [asyncio.create_task(send(b)) for b in batches[10:]]
            await asyncio.gather(*first, *rest)
            await applier.stop()
            while (await CatchUpEvents(kit.deps)()).applied:  # the tick's catch-up
                pass

        assert dropped >= 1  # the service's connections, in use and idle, were cut
        async with engine.connect() as conn:
            stored, distinct, pending = (
                await conn.execute(
                    select(
                        func.count(),
                        func.count(func.distinct(events_t.c.event_id)),
                        func.count().filter(events_t.c.state != "handled"),
                    )
                )
            ).one()
        assert (stored, distinct, pending) == (60, 60, 0)  # each stored once, all applied
        rewards = await ledger(kit)
        assert len(rewards) == 20  # each member's task completed and rewarded once
        assert len({user_id for user_id, *_ in rewards}) == 20
    finally:
        await engine.dispose()
